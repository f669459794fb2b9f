#!/usr/bin/python3
"""Writes the seed corpora of tests/fuzz/corpus/ (run once; the files are
checked in). Valid serialized requests against fuzz_support.h's catalog, so
the fuzzers start from inputs that pass validation.

  protoc --proto_path=proto --python_out=/tmp/py proto/rowgate/v1/rowgate.proto
  PYTHONPATH=/tmp/py /usr/bin/python3 tests/fuzz/make_seeds.py
"""
import os
import struct

from rowgate.v1 import rowgate_pb2 as pb

here = os.path.dirname(os.path.abspath(__file__))


def write(target, name, data):
    d = os.path.join(here, "corpus", target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def val(**kw):
    v = pb.Value()
    for k, x in kw.items():
        if k == "ts":
            v.timestamp_value.seconds, v.timestamp_value.nanos = x
        else:
            setattr(v, k, x)
    return v


# fuzz_request: first byte picks the handler (0 lookup, 1 page, 2 insert,
# 3 update, 4 delete).
r = pb.BatchGetRequest(entity="all_types", keys=[val(int64_value=1), val(int64_value=42)])
write("fuzz_request", "lookup_ids", b"\x00" + r.SerializeToString())
r = pb.BatchGetRequest(entity="all_types", key_column="external_id",
                       keys=[val(string_value="A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11")],
                       columns=["id", "label", "blob"])
write("fuzz_request", "lookup_uuid", b"\x00" + r.SerializeToString())
r = pb.BatchGetRequest(entity="pairs", keys=[val(string_value="a"), val(string_value="b")])
write("fuzz_request", "lookup_text", b"\x00" + r.SerializeToString())

p = pb.PageRequest(entity="all_types", page_size=10, columns=["id", "label"])
p.filters.add(column="small", op=pb.Filter.GREATER, value=val(int64_value=3))
p.filters.add(column="label", op=pb.Filter.IN, values=[val(string_value="x"), val(string_value="y")])
p.filters.add(column="blob", op=pb.Filter.IS_NULL)
p.order_by.add(column="happened_at", descending=True)
p.order_by.add(column="label")
write("fuzz_request", "page_filters", b"\x01" + p.SerializeToString())
p = pb.PageRequest(entity="pairs", page_size=2, offset=4)
write("fuzz_request", "page_offset", b"\x01" + p.SerializeToString())

ins = pb.InsertRequest(entity="all_types")
row = ins.rows.add()
row.fields["small"].int64_value = 7
row.fields["medium"].int64_value = 70000
row.fields["real_number"].double_value = 1.5
row.fields["amount"].string_value = "12.50"
row.fields["label"].string_value = "hello"
row.fields["flag"].bool_value = True
row.fields["blob"].bytes_value = b"\x00\x01\xff"
row.fields["happened_at"].timestamp_value.seconds = 1700000000
row.fields["birthday"].string_value = "2000-02-29"
row.fields["external_id"].string_value = "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"
row.fields["doc"].string_value = '{"a": [1, 2]}'
row.fields["place"].string_value = "(1,2)"
write("fuzz_request", "insert_all_types", b"\x02" + ins.SerializeToString())

up = pb.UpdateRequest(entity="all_types")
up.row.fields["id"].int64_value = 5
up.row.fields["version"].timestamp_value.seconds = 1700000000
up.row.fields["version"].timestamp_value.nanos = 123456000
up.row.fields["label"].string_value = "new"
write("fuzz_request", "update_versioned", b"\x03" + up.SerializeToString())

d = pb.DeleteRequest(entity="all_types", keys=[val(int64_value=5)],
                     expected_version=val(ts=(1700000000, 1000)))
write("fuzz_request", "delete_versioned", b"\x04" + d.SerializeToString())

# fuzz_value: the LAST byte picks the mode (FuzzedDataProvider reads integers
# from the end): 0 storage values, 1 a proto Value, 2 a proto Row.
for i, v in enumerate([val(int64_value=-5), val(string_value="text"),
                       val(ts=(-62135596800, 0)), val(double_value=float("nan")),
                       val(bytes_value=b"\x00\xff"), val(null_value=0)]):
    write("fuzz_value", "proto_value_%d" % i, v.SerializeToString() + b"\x01")
write("fuzz_value", "proto_row", row.SerializeToString() + b"\x02")
write("fuzz_value", "storage_mixed", b"2026-12-01 20:00:00.5+01:30\x00abc" * 2 + b"\x00\x00")

# fuzz_page_token: a real token (last byte odd: decode mode) and a cursor.
def token(fp, values):
    raw = b"RG1" + struct.pack("<Q", fp) + bytes([len(values)])
    for tag, payload in values:
        raw += bytes([tag]) + payload
    import base64
    return base64.urlsafe_b64encode(raw).rstrip(b"=")
write("fuzz_page_token", "token_int_text",
      token(12345, [(1, struct.pack("<q", 42)), (3, b"\x03abc"), (0, b"")]) + b"\x01")
write("fuzz_page_token", "token_ts_bool",
      token(1, [(6, struct.pack("<q", 1700000000000000)), (4, b"\x01")]) + b"\x01")
write("fuzz_page_token", "cursor", bytes(range(64)) + b"\x00")

# fuzz_statements: the last byte picks the entity, the one before it the
# statement (0 lookup, 1 insert, 2 update, 3 delete, 4 page); the rest is
# raw material for FuzzedDataProvider.
import random
random.seed(8)
for op in range(5):
    for ent in range(2):
        body = bytes(random.randrange(256) for _ in range(120))
        write("fuzz_statements", "op%d_entity%d" % (op, ent), body + bytes([op, ent]))
