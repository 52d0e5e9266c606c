"""Validates payloads against Backplane's JSON Schema files with the `jsonschema` package.

usage: validate_schemas.py SCHEMA_DIR PAYLOADS.jsonl
Each line is {"schema": "<file in SCHEMA_DIR>", "payload": <JSON>}. Prints every
violation; the last line is "N valid"; exits 1 if any payload is invalid.
"""

import json
import pathlib
import sys

import jsonschema
from referencing import Registry, Resource


def main() -> int:
    schema_dir = pathlib.Path(sys.argv[1])
    schemas = {}
    resources = []
    for path in schema_dir.glob("*.json"):
        schema = json.loads(path.read_text())
        jsonschema.Draft202012Validator.check_schema(schema)
        schemas[path.name] = schema
        resources.append((path.name, Resource.from_contents(schema)))
        if "$id" in schema:
            resources.append((schema["$id"], Resource.from_contents(schema)))
    registry = Registry().with_resources(resources)
    valid = 0
    failed = 0
    for line in pathlib.Path(sys.argv[2]).read_text().splitlines():
        item = json.loads(line)
        validator = jsonschema.Draft202012Validator(schemas[item["schema"]], registry=registry)
        errors = list(validator.iter_errors(item["payload"]))
        if errors:
            failed += 1
            for e in errors:
                print(f"{item['schema']}: {e.json_path}: {e.message}")
            print(f"  payload: {json.dumps(item['payload'])}")
        else:
            valid += 1
    print(f"{valid} valid")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
