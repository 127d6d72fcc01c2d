"""sirsync on AWS Lambda: the handlers, the work queue and secrets kept in AWS (see docs/lambda.md)."""
