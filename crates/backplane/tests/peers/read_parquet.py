"""Reads a Parquet file with pyarrow (not our code) and prints what it found as JSON.

Usage: read_parquet.py FILE

Prints one JSON object: `rows` (from the file's metadata), `schema` (per column: name,
pyarrow's type string, nullable) and `columns` (per column name: its values as Python sees
them; timestamps as integer nanoseconds since the epoch, NaN and infinities as strings).
Reading itself is the first check: pyarrow refuses files it cannot make sense of (e.g. two
columns of one name).
"""

import json
import math
import sys

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq


def plain(value):
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, list):
        return [plain(v) for v in value]
    return value


def values(column):
    kind = column.type
    if pa.types.is_timestamp(kind):
        return pc.cast(column, pa.int64()).to_pylist()
    if pa.types.is_list(kind) and pa.types.is_timestamp(kind.value_type):
        return pc.cast(column, pa.list_(pa.int64())).to_pylist()
    return [plain(v) for v in column.to_pylist()]


def main():
    path = sys.argv[1]
    table = pq.read_table(path)
    report = {
        "rows": pq.ParquetFile(path).metadata.num_rows,
        "schema": [
            {"name": f.name, "type": str(f.type), "nullable": f.nullable} for f in table.schema
        ],
        "columns": {name: values(table.column(name)) for name in table.column_names},
    }
    print(json.dumps(report))


if __name__ == "__main__":
    main()
