"""deploy/aws/template.yaml holds the properties the deployment guide promises."""

from __future__ import annotations

import ast
import re
from pathlib import Path
from typing import Any

import botocore.session
import pytest

from tests.deploy.cfn import REPO, as_list, branches, load, policy_statements

ADAPTER = REPO / "connectors" / "sir" / "adapter.py"
HANDLERS = {
    "ScheduledFunction": "connectors.aws.handlers.scheduled",
    "WorkerFunction": "connectors.aws.handlers.worker",
    "WebhookFunction": "connectors.aws.handlers.webhook",
}
# the settings a deployment may set (the public names); a misspelt one would be refused at start
CONTRACT_SETTINGS = {
    "SIRSYNC_TARGETS",
    "SIRSYNC_SIR__REGION",
    "SIRSYNC_JIRA__URL",
    "SIRSYNC_JIRA__USER",
    "SIRSYNC_JIRA__PROJECT",
    "SIRSYNC_JIRA__TOKEN_SECRET_ID",
    "SIRSYNC_SERVICENOW__URL",
    "SIRSYNC_SERVICENOW__USER",
    "SIRSYNC_SERVICENOW__TABLE",
    "SIRSYNC_SERVICENOW__PASSWORD_SECRET_ID",
    "SIRSYNC_STATE_BACKEND",
    "SIRSYNC_DYNAMODB__TABLE",
    "SIRSYNC_DYNAMODB__REGION",
    "SIRSYNC_AWS__QUEUE_URL",
    "SIRSYNC_LOG_LEVEL",
    "SIRSYNC_SYNC__COMMENT_CHECKS_PER_CYCLE",
    "SIRSYNC_SERVE__JIRA_SECRET_ID",
    "SIRSYNC_SERVE__SERVICENOW_SECRET_ID",
    "SIRSYNC_SERVE__SIR_SECRET_ID",
}
# actions IAM allows only on every resource ("*"): listing cases names no case
UNSCOPED_ACTIONS = {"security-ir:ListCases", "security-ir:CreateCase"}


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    return load()


def resources_of(template: dict[str, Any], kind: str) -> dict[str, dict[str, Any]]:
    return {name: res for name, res in template["Resources"].items() if res["Type"] == kind}


def sir_operations_called_by(source: Path) -> set[str]:
    """The SIR operations the adapter's code names: every string constant that is an operation of
    botocore's security-ir model, as boto3's method (``list_cases``) or as the operation (``ListCases``).
    Whatever wrapper the calls go through, a new operation shows up here."""
    operations = botocore.session.get_session().get_service_model("security-ir").operation_names
    by_name = {name: name for name in operations}
    by_name |= {re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower(): name for name in operations}
    return {
        f"security-ir:{by_name[node.value]}"
        for node in ast.walk(ast.parse(source.read_text(encoding="utf-8")))
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value in by_name
    }


def allowed_actions(template: dict[str, Any], prefix: str) -> set[str]:
    return {
        action
        for _, statement in policy_statements(template)
        if statement.get("Effect") == "Allow"
        for action in as_list(statement["Action"])
        if action.startswith(prefix)
    }


def test_no_iam_statement_uses_a_wildcard_action_or_not_action(template: dict[str, Any]) -> None:
    found = [
        (resource, action)
        for resource, statement in policy_statements(template)
        for action in as_list(statement.get("Action", []))
        if "*" in action
    ]
    assert [resource for resource, _ in policy_statements(template)], "no IAM statement found at all"
    assert found == []
    assert [r for r, s in policy_statements(template) if "NotAction" in s or "NotResource" in s] == []


def test_only_listing_cases_is_allowed_on_every_resource(template: dict[str, Any]) -> None:
    broad = {
        action
        for _, statement in policy_statements(template)
        if "*" in as_list(statement.get("Resource", []))
        for action in as_list(statement["Action"])
    }
    assert broad <= UNSCOPED_ACTIONS


def test_every_sir_action_the_adapter_calls_is_allowed_and_no_other(template: dict[str, Any]) -> None:
    called = sir_operations_called_by(ADAPTER)
    assert {"security-ir:ListCases", "security-ir:GetCase", "security-ir:ListComments"} <= called
    assert allowed_actions(template, "security-ir:") == called


def test_sir_actions_other_than_listing_are_scoped_to_cases(template: dict[str, Any]) -> None:
    for _, statement in policy_statements(template):
        actions = set(as_list(statement["Action"]))
        if any(action.startswith("security-ir:") for action in actions) and actions - UNSCOPED_ACTIONS:
            for resource in as_list(statement["Resource"]):
                arn = resource["Fn::Sub"]
                assert ":security-ir:" in arn and arn.endswith(":case/*"), resource


def test_dynamodb_sqs_and_secrets_actions_are_on_this_stacks_resources_only(template: dict[str, Any]) -> None:
    allowed_targets = {
        "dynamodb:": {"StateTable"},
        "sqs:": {"WorkQueue"},
        "secretsmanager:": {
            "JiraTokenSecret",
            "ServiceNowPasswordSecret",
            "JiraWebhookSecret",
            "ServiceNowWebhookSecret",
            "JiraTokenSecretArn",  # an existing secret the operator names
            "ServiceNowPasswordSecretArn",
        },
    }
    checked = 0
    for _, statement in policy_statements(template):
        actions = as_list(statement["Action"])
        for prefix, targets in allowed_targets.items():
            if not any(action.startswith(prefix) for action in actions):
                continue
            for resource in as_list(statement["Resource"]):
                checked += 1
                assert _names(resource) & targets, (actions, resource)
    assert checked >= 6


def _names(resource: Any) -> set[str]:
    """The template names a resource expression refers to: Ref X, GetAtt X.Arn, Sub ${X.Arn}/index/..."""
    if isinstance(resource, dict):
        if "Ref" in resource:
            return {resource["Ref"]}
        if "Fn::GetAtt" in resource:
            return {resource["Fn::GetAtt"][0]}
        if "Fn::Sub" in resource:
            return {name.split(".")[0] for name in re.findall(r"\$\{([^}]+)\}", resource["Fn::Sub"])}
    return set()


def test_functions_use_the_public_handlers_on_a_supported_runtime(template: dict[str, Any]) -> None:
    functions = resources_of(template, "AWS::Serverless::Function")
    assert {name: fn["Properties"]["Handler"] for name, fn in functions.items()} == HANDLERS
    runtime = template["Globals"]["Function"]["Runtime"]
    assert runtime in ("python3.11", "python3.12")


def test_scheduled_function_runs_one_at_a_time_on_a_schedule(template: dict[str, Any]) -> None:
    scheduled = template["Resources"]["ScheduledFunction"]["Properties"]
    assert scheduled["ReservedConcurrentExecutions"] == 1
    (schedule,) = resources_of(template, "AWS::Scheduler::Schedule").values()
    assert schedule["Properties"]["Target"]["Arn"] == {"Fn::GetAtt": ["ScheduledFunction", "Arn"]}
    assert schedule["Properties"]["ScheduleExpression"] == {"Ref": "ScheduleExpression"}
    assert template["Parameters"]["ScheduleExpression"]["Default"] == "rate(15 minutes)"


def test_worker_reads_the_work_queue_reporting_each_failed_item(template: dict[str, Any]) -> None:
    worker = template["Resources"]["WorkerFunction"]["Properties"]
    (event,) = worker["Events"].values()
    assert event["Type"] == "SQS"
    assert event["Properties"]["Queue"] == {"Fn::GetAtt": ["WorkQueue", "Arn"]}
    assert event["Properties"]["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    queue = template["Resources"]["WorkQueue"]["Properties"]
    assert queue["VisibilityTimeout"] >= 6 * worker["Timeout"]


def test_work_queue_redrives_to_a_dead_letter_queue_that_raises_an_alarm(template: dict[str, Any]) -> None:
    redrive = template["Resources"]["WorkQueue"]["Properties"]["RedrivePolicy"]
    assert redrive["deadLetterTargetArn"] == {"Fn::GetAtt": ["DeadLetterQueue", "Arn"]}
    assert redrive["maxReceiveCount"] == {"Ref": "MaxReceiveCount"}
    assert template["Parameters"]["MaxReceiveCount"]["Default"] == 5
    alarms = resources_of(template, "AWS::CloudWatch::Alarm").values()
    watched = [
        alarm["Properties"]
        for alarm in alarms
        if alarm["Properties"]["Dimensions"][0]["Value"] == {"Fn::GetAtt": ["DeadLetterQueue", "QueueName"]}
    ]
    assert [(a["MetricName"], a["Threshold"]) for a in watched] == [("ApproximateNumberOfMessagesVisible", 0)]


def test_sir_events_reach_the_work_queue_and_only_from_their_rule(template: dict[str, Any]) -> None:
    (rule,) = resources_of(template, "AWS::Events::Rule").values()
    pattern = rule["Properties"]["EventPattern"]
    assert pattern["source"] == ["aws.security-ir"]
    assert set(pattern["detail-type"]) == {
        "Case Created",
        "Case Updated",
        "Case Comment Added",
        "Case Comment Updated",
        "Case Closed",
    }
    assert [t["Arn"] for t in rule["Properties"]["Targets"]] == [{"Fn::GetAtt": ["WorkQueue", "Arn"]}]
    (policy,) = resources_of(template, "AWS::SQS::QueuePolicy").values()
    (statement,) = policy["Properties"]["PolicyDocument"]["Statement"]
    assert statement["Principal"] == {"Service": "events.amazonaws.com"}
    assert statement["Condition"]["ArnEquals"]["aws:SourceArn"] == {"Fn::GetAtt": ["SirEventsRule", "Arn"]}


def test_webhook_has_a_function_url_whose_requests_it_authenticates_itself(template: dict[str, Any]) -> None:
    webhook = template["Resources"]["WebhookFunction"]["Properties"]
    assert webhook["FunctionUrlConfig"]["AuthType"] == "NONE"
    assert "ReservedConcurrentExecutions" not in webhook


def test_state_table_is_the_contract_table_with_recovery_and_ttl(template: dict[str, Any]) -> None:
    table = template["Resources"]["StateTable"]
    assert table["DeletionPolicy"] == "Retain"
    props = table["Properties"]
    assert props["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}
    assert props["TimeToLiveSpecification"] == {"AttributeName": "expires_at", "Enabled": True}
    assert _table_shape(props) == {
        "attributes": {(name, "S") for name in ("pk", "sk", "gsi1pk", "gsi1sk", "gsi2pk", "gsi2sk")},
        "keys": [("pk", "HASH"), ("sk", "RANGE")],
        "indexes": {
            "by-ticket": ([("gsi1pk", "HASH"), ("gsi1sk", "RANGE")], "ALL"),
            "by-kind": ([("gsi2pk", "HASH"), ("gsi2sk", "RANGE")], "ALL"),
        },
        "billing": "PAY_PER_REQUEST",
    }


def test_state_table_matches_the_dynamodb_store_schema(template: dict[str, Any]) -> None:
    store = pytest.importorskip(
        "connectors.state.dynamodb", reason="the DynamoDB state store (TABLE_SCHEMA) is not in this tree yet"
    )
    schema = store.TABLE_SCHEMA
    props = template["Resources"]["StateTable"]["Properties"]
    expected = _table_shape(props)
    if "BillingMode" not in schema:  # the store may leave billing to whoever makes the table
        del expected["billing"]
    assert {key: value for key, value in _table_shape(schema).items() if key in expected} == expected
    ttl = schema.get("TimeToLiveSpecification") or schema.get("TimeToLive")
    if ttl is not None:
        assert ttl["AttributeName"] == props["TimeToLiveSpecification"]["AttributeName"]


def _table_shape(table: dict[str, Any]) -> dict[str, Any]:
    """The parts of a table definition (CloudFormation's or boto3's create_table) that must agree."""

    def keys(schema: list[dict[str, str]]) -> list[tuple[str, str]]:
        return [(key["AttributeName"], key["KeyType"]) for key in schema]

    return {
        "attributes": {(a["AttributeName"], a["AttributeType"]) for a in table["AttributeDefinitions"]},
        "keys": keys(table["KeySchema"]),
        "indexes": {
            index["IndexName"]: (keys(index["KeySchema"]), index["Projection"]["ProjectionType"])
            for index in table.get("GlobalSecondaryIndexes", [])
        },
        "billing": table.get("BillingMode"),
    }


def test_secrets_are_made_without_a_value_baked_in(template: dict[str, Any]) -> None:
    secrets = resources_of(template, "AWS::SecretsManager::Secret")
    assert len(secrets) >= 2
    for name, secret in secrets.items():
        assert "SecretString" not in secret["Properties"], name
    # a parameter may name a secret (its ARN) but never carry one
    carrying = [
        name
        for name in template["Parameters"]
        if re.search("token|password|secret", name, re.IGNORECASE) and not name.endswith("SecretArn")
    ]
    assert carrying == []


def test_environment_sets_only_public_settings(template: dict[str, Any]) -> None:
    names = set(template["Globals"]["Function"]["Environment"]["Variables"])
    for function in resources_of(template, "AWS::Serverless::Function").values():
        names |= set(function["Properties"].get("Environment", {}).get("Variables", {}))
    assert names - CONTRACT_SETTINGS == set()
    env = template["Globals"]["Function"]["Environment"]["Variables"]
    assert env["SIRSYNC_STATE_BACKEND"] == "dynamodb"
    assert env["SIRSYNC_DYNAMODB__TABLE"] == {"Ref": "StateTable"}
    assert env["SIRSYNC_AWS__QUEUE_URL"] == {"Ref": "WorkQueue"}


def test_each_function_logs_to_a_group_with_retention(template: dict[str, Any]) -> None:
    groups = resources_of(template, "AWS::Logs::LogGroup")
    for name, function in resources_of(template, "AWS::Serverless::Function").items():
        group = function["Properties"]["LoggingConfig"]["LogGroup"]["Ref"]
        assert groups[group]["Properties"]["RetentionInDays"] == {"Ref": "LogRetentionDays"}, name
    assert template["Parameters"]["LogRetentionDays"]["Default"] == 30


def test_outputs_name_the_queue_the_function_url_and_the_table(template: dict[str, Any]) -> None:
    values = [output["Value"] for output in template["Outputs"].values()]
    assert {"Ref": "WorkQueue"} in values
    assert {"Ref": "StateTable"} in values
    assert {"Fn::GetAtt": ["WebhookFunctionUrl", "FunctionUrl"]} in values


def test_conditional_values_open_both_ways() -> None:
    assert list(branches({"Fn::If": ["C", "a", {"Ref": "AWS::NoValue"}]})) == ["a"]
    assert as_list([{"Fn::If": ["C", ["a", "b"], "c"]}, "d"]) == ["a", "b", "c", "d"]
