"""The mapping file's JSON Schema, generated from the same models that load it, so that editors
validate and complete mapping files as sirsync reads them (``sirsync mappings schema``).

What the models keep as plain text, the schema narrows where it can without contacting a system: the
SIR case fields a value comes from, SIR's statuses, the conflict policies. Ticket statuses and field
names belong to each site and are checked by preflight, not here."""

from __future__ import annotations

import copy
from typing import Any

from connectors.mapping.compiled import SYNTHETIC_FIELDS, settable_statuses
from connectors.mapping.intake import CASE_FIELDS
from connectors.mapping.model import MappingFile
from connectors.sir import schema

SCHEMA_FILE = "sirsync-mapping.schema.json"  # beside the shipped mappings, and written by `export`
DIALECT = "https://json-schema.org/draft/2020-12/schema"
METADATA = r"^metadata\..+"


def mapping_schema() -> dict[str, Any]:
    found = copy.deepcopy(MappingFile.model_json_schema())
    definitions = found["$defs"]
    case_field = {
        "anyOf": [
            {"enum": sorted({*schema.case_fields(), *SYNTHETIC_FIELDS})},
            {"type": "string", "pattern": METADATA},
        ]
    }
    case_only = {"anyOf": [{"enum": sorted(schema.case_fields())}, {"type": "string", "pattern": METADATA}]}
    statuses = {"enum": list(schema.enum("CaseStatus"))}
    policies = {"enum": ["sir_wins", "jira_wins", "servicenow_wins", "newest"]}
    for name in ("ValueSource", "FieldMap"):
        properties = definitions[name]["properties"]
        properties["sir"] = {**properties["sir"], "anyOf": [case_field, {"type": "null"}]}
    definitions["FieldMap"]["properties"]["conflict"].update(policies)
    status = definitions["StatusMap"]["properties"]
    status["conflict"].update(policies)
    status["outbound"]["propertyNames"] = statuses
    status["inbound"]["additionalProperties"] = {"enum": list(settable_statuses())}
    definitions["LabelRule"]["properties"]["when"]["propertyNames"] = case_only
    found["properties"]["system"]["enum"] = ["jira", "servicenow"]
    intake = definitions["CaseFromTicket"]["properties"]
    for part in ("fields", "defaults"):
        intake[part]["propertyNames"] = {"enum": list(CASE_FIELDS)}
    return {
        "$schema": DIALECT,
        "title": "sirsync mapping file (version 1)",
        **{key: value for key, value in found.items() if key != "title"},
    }
