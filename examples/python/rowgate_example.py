#!/usr/bin/python3
"""A Python client for rowgate that calls every RPC and checks the answers.

Usage: /usr/bin/python3 rowgate_example.py HOST:PORT

It needs Debian's python3-grpcio and python3-protobuf, protoc and
/usr/bin/grpc_python_plugin. The stubs are generated from
proto/rowgate/v1/rowgate.proto into a temporary directory at each run.

It expects the demo data of deploy/sample_data.sql (users 1..10, grouptypes
11 and 12, groups 13..16, users_groups 17..24) and leaves it as it found it:
every write goes to rows it inserts itself (surname MARKER, e-mail under
@python.example), and rows left behind by an interrupted run are deleted at
the start. It exits 0 when every check passed, 1 with a FAIL line otherwise.
"""

import os
import subprocess
import sys
import tempfile
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
PROTO_DIR = os.environ.get(
    "ROWGATE_PROTO_DIR", os.path.normpath(os.path.join(HERE, "..", "..", "proto")))
GRPC_PYTHON_PLUGIN = os.environ.get("GRPC_PYTHON_PLUGIN", "/usr/bin/grpc_python_plugin")

MARKER = "python-example"   # surname of every row this example writes
DOMAIN = "@python.example"  # e-mail domain of every row this example writes
MISSING_ID = 999999999999   # far beyond what all_id_seq hands out
TIMEOUT = 10                # seconds, for every call

SAMPLE_EMAILS = {
    1: "leslie.cannon@university.world",
    2: "cathy.hickman@university.world",
    3: "rene.fowler@university.world",
    4: "nora.briggs@university.world",
    5: "oscar.lamb@university.world",
}


class CheckFailed(Exception):
    pass


def check(condition, message):
    if not condition:
        raise CheckFailed(message)


def expect_equal(got, want, what):
    check(got == want, f"{what}: got {got!r}, want {want!r}")


def ok(message):
    print(f"ok   {message}", flush=True)


def generate_stubs(out_dir):
    """Runs protoc; returns the imported (rowgate_pb2, rowgate_pb2_grpc)."""
    cmd = [
        "protoc",
        f"--python_out={out_dir}",
        f"--grpc_out={out_dir}",
        f"--plugin=protoc-gen-grpc={GRPC_PYTHON_PLUGIN}",
        "-I", PROTO_DIR,
        "-I", "/usr/include",
        "rowgate/v1/rowgate.proto",
    ]
    result = subprocess.run(cmd, capture_output=True, text=True)
    if result.returncode != 0:
        raise CheckFailed(f"protoc failed ({' '.join(cmd)}):\n{result.stderr}")
    sys.path.insert(0, out_dir)
    from rowgate.v1 import rowgate_pb2, rowgate_pb2_grpc  # noqa: E402
    return rowgate_pb2, rowgate_pb2_grpc


# --------------------------------------------------------------------------


class Example:
    def __init__(self, grpc, pb, pb_grpc, channel):
        self.grpc = grpc
        self.pb = pb
        self.data = pb_grpc.DataServiceStub(channel)
        self.admin = pb_grpc.AdminServiceStub(channel)
        self.run_id = uuid.uuid4().hex[:12]

    # -- helpers -----------------------------------------------------------

    def int_value(self, n):
        return self.pb.Value(int64_value=n)

    def str_value(self, s):
        return self.pb.Value(string_value=s)

    def row(self, **fields):
        row = self.pb.Row()
        for name, value in fields.items():
            row.fields[name].CopyFrom(value)
        return row

    @staticmethod
    def plain(value):
        """A Value as a Python object (None for NULL or unset)."""
        kind = value.WhichOneof("kind")
        if kind is None or kind == "null_value":
            return None
        if kind == "timestamp_value":
            return (value.timestamp_value.seconds, value.timestamp_value.nanos)
        return getattr(value, kind)

    def plain_row(self, row):
        return {name: self.plain(value) for name, value in row.fields.items()}

    def batch_get(self, entity, keys, columns=(), key_column=""):
        request = self.pb.BatchGetRequest(
            entity=entity, keys=[self.int_value(k) for k in keys],
            columns=list(columns), key_column=key_column)
        return self.data.BatchGet(request, timeout=TIMEOUT)

    def get_one(self, entity, key, columns=()):
        """The row with primary key `key` as a dict, or None."""
        result = self.batch_get(entity, [key], columns).results[0]
        if not result.found:
            return None
        expect_equal(len(result.rows), 1, f"rows for {entity} {key}")
        return self.plain_row(result.rows[0])

    def expect_error(self, code, call, what, *message_parts):
        try:
            call()
        except self.grpc.RpcError as e:
            expect_equal(e.code(), code, f"{what}: status")
            for part in message_parts:
                check(part in (e.details() or ""),
                      f"{what}: message {e.details()!r} does not mention {part!r}")
            return e
        raise CheckFailed(f"{what}: succeeded, want {code}")

    # -- the steps ---------------------------------------------------------

    def cleanup_leftovers(self):
        """Deletes rows an interrupted earlier run may have left."""
        page = self.data.Page(self.pb.PageRequest(
            entity="users", page_size=1000, columns=["id"],
            filters=[self.pb.Filter(column="surname", op=self.pb.Filter.EQUAL,
                                    value=self.str_value(MARKER))]),
            timeout=TIMEOUT)
        ids = [r.fields["id"].int64_value for r in page.rows]
        if ids:
            self.data.Delete(self.pb.DeleteRequest(
                entity="users", keys=[self.int_value(i) for i in ids]), timeout=TIMEOUT)
            print(f"note deleted {len(ids)} row(s) left by an earlier run", flush=True)

    def list_entities(self):
        response = self.data.ListEntities(self.pb.ListEntitiesRequest(), timeout=TIMEOUT)
        by_name = {e.name: e for e in response.entities}
        for name in ("users", "groups", "grouptypes", "users_groups"):
            check(name in by_name, f"ListEntities: {name} missing from {sorted(by_name)}")
        for name in ("users", "groups", "grouptypes"):
            expect_equal(by_name[name].primary_key, "id", f"ListEntities: {name} primary key")
        # The notebook's composite key: no one column is the key.
        expect_equal(by_name["users_groups"].primary_key, "", "users_groups primary key")
        expect_equal(list(by_name["users_groups"].primary_key_columns),
                     ["id", "user_id", "group_id"], "users_groups primary key columns")
        expect_equal(by_name["users"].version_column, "lastchange", "users version column")
        expect_equal(by_name["users_groups"].version_column, "", "users_groups version column")
        fks = {(f.column, f.references_entity, f.references_column)
               for f in by_name["groups"].foreign_keys}
        check(("grouptype_id", "grouptypes", "id") in fks,
              f"ListEntities: groups foreign keys {fks} lack grouptype_id -> grouptypes.id")
        ok(f"ListEntities: {', '.join(sorted(by_name))}")

    def describe_entity(self):
        users = self.data.DescribeEntity(
            self.pb.DescribeEntityRequest(entity="users"), timeout=TIMEOUT)
        expect_equal(users.name, "users", "DescribeEntity name")
        expect_equal(users.primary_key, "id", "DescribeEntity primary key")
        expect_equal(users.version_column, "lastchange", "DescribeEntity version column")
        columns = {c.name: c for c in users.columns}
        want = {  # name: (type, value_kind, nullable, has_default)
            "id": ("bigint", "int64_value", False, True),
            "name": ("character varying", "string_value", True, False),
            "surname": ("character varying", "string_value", True, False),
            "email": ("character varying", "string_value", True, False),
            "lastchange": ("timestamp without time zone", "timestamp_value", True, True),
            "externalId": ("bigint", "int64_value", True, False),
        }
        expect_equal(sorted(columns), sorted(want), "DescribeEntity users columns")
        for name, (type_, kind, nullable, has_default) in want.items():
            c = columns[name]
            expect_equal((c.type, c.value_kind, c.nullable, c.has_default, c.writable),
                         (type_, kind, nullable, has_default, True),
                         f"DescribeEntity users.{name} (type, value_kind, nullable, "
                         "has_default, writable)")
        ok("DescribeEntity users: 6 columns, id bigint/int64_value, lastchange version")

    def batch_get_by_primary_key(self):
        keys = [1, 2, 3, 4, 4, MISSING_ID]
        response = self.batch_get("users", keys, columns=["id", "email"])
        expect_equal(len(response.results), len(keys), "BatchGet result count")
        for i, (key, result) in enumerate(zip(keys, response.results)):
            expect_equal(self.plain(result.key), key, f"BatchGet result {i} key echo")
            if key == MISSING_ID:
                check(not result.found and not result.rows,
                      f"BatchGet result {i}: missing key {key} reported found")
                continue
            check(result.found, f"BatchGet result {i}: key {key} not found")
            expect_equal(len(result.rows), 1, f"BatchGet result {i} row count")
            expect_equal(self.plain_row(result.rows[0]),
                         {"id": key, "email": SAMPLE_EMAILS[key]},
                         f"BatchGet result {i} row (only the asked columns)")
        ok("BatchGet users [1, 2, 3, 4, 4, missing]: in order, duplicate answered, "
           "missing not found")

    def batch_get_one_to_many(self):
        response = self.batch_get("groups", [11, 12, MISSING_ID], columns=["id", "name"],
                                  key_column="grouptype_id")
        expect_equal(len(response.results), 3, "one-to-many result count")
        want = [
            {13: "Faculty of Science", 14: "Faculty of Arts"},
            {15: "Department of Physics", 16: "Department of History"},
            {},
        ]
        for key, result, rows in zip([11, 12, MISSING_ID], response.results, want):
            expect_equal(self.plain(result.key), key, "one-to-many key echo")
            expect_equal(result.found, bool(rows), f"one-to-many grouptype {key} found")
            got = {r.fields["id"].int64_value: r.fields["name"].string_value
                   for r in result.rows}
            expect_equal(len(result.rows), len(rows), f"one-to-many grouptype {key} rows")
            expect_equal(got, rows, f"one-to-many grouptype {key} groups")
        ok("BatchGet groups by grouptype_id: 11 -> {13, 14}, 12 -> {15, 16}, missing -> none")

    def stream_batch_get(self):
        pb = self.pb
        big_tag = 2**63 + 5  # uint64 beyond int64: must be echoed exactly

        def req(entity, keys, columns=(), key_column=""):
            return pb.BatchGetRequest(entity=entity, keys=[self.int_value(k) for k in keys],
                                      columns=list(columns), key_column=key_column)

        requests = {
            1: req("users", [1], ["name"]),
            2: req("users", [2], ["name"]),
            3: req("users", [3, 4, 4, MISSING_ID], ["email"]),
            4: req("groups", [11], ["id"], key_column="grouptype_id"),
            5: req("users_groups", [1], ["group_id"], key_column="user_id"),
            6: req("no_such_entity", [1]),
            big_tag: req("users", [5], ["name"]),
        }
        # The check of each answer, by tag: a function of the BatchGetResponse.
        def names(r):
            return [self.plain_row(row) for res in r.results for row in res.rows]

        def keys_found(r):
            return [(self.plain(res.key), res.found) for res in r.results]

        def emails(r):
            return [[row.fields["email"].string_value for row in res.rows] for res in r.results]

        want = {
            1: lambda r: expect_equal(names(r), [{"name": "Leslie"}], "stream tag 1"),
            2: lambda r: expect_equal(names(r), [{"name": "Cathy"}], "stream tag 2"),
            3: lambda r: (
                expect_equal(keys_found(r), [(3, True), (4, True), (4, True),
                                             (MISSING_ID, False)], "stream tag 3 keys"),
                expect_equal(emails(r), [[SAMPLE_EMAILS[3]], [SAMPLE_EMAILS[4]],
                                         [SAMPLE_EMAILS[4]], []], "stream tag 3 rows")),
            4: lambda r: expect_equal(sorted(row["id"] for row in names(r)), [13, 14],
                                      "stream tag 4 groups of grouptype 11"),
            5: lambda r: expect_equal(sorted(row["group_id"] for row in names(r)), [13, 15],
                                      "stream tag 5 groups of user 1"),
            big_tag: lambda r: expect_equal(names(r), [{"name": "Oscar"}],
                                            f"stream tag {big_tag}"),
        }

        # Every request is written before any answer is read: all are in flight
        # on the one stream together.
        call = self.data.StreamBatchGet(
            iter([pb.StreamBatchGetRequest(tag=t, request=r) for t, r in requests.items()]),
            timeout=TIMEOUT)
        seen = {}
        for answer in call:
            check(answer.tag in requests, f"stream: answer with unknown tag {answer.tag}")
            check(answer.tag not in seen, f"stream: tag {answer.tag} answered twice")
            seen[answer.tag] = answer
        expect_equal(sorted(seen), sorted(requests), "stream: tags answered")
        for tag, answer in seen.items():
            outcome = answer.WhichOneof("outcome")
            if tag == 6:
                expect_equal(outcome, "error", "stream tag 6 (unknown entity) outcome")
                expect_equal(answer.error.code, 3, "stream tag 6 error code (INVALID_ARGUMENT)")
                check("no_such_entity" in answer.error.message,
                      f"stream tag 6: message {answer.error.message!r} does not name the entity")
            else:
                expect_equal(outcome, "response", f"stream tag {tag} outcome")
                want[tag](answer.response)
        ok(f"StreamBatchGet: {len(requests)} tags in flight on one stream, each answered once; "
           "the unknown entity's error did not end the stream")

    def insert(self):
        self.email_a = f"ada.{self.run_id}{DOMAIN}"
        self.email_b = f"alan.{self.run_id}{DOMAIN}"
        big = 2**53 + 1  # not exact as a double: must come back exactly
        response = self.data.Insert(self.pb.InsertRequest(entity="users", rows=[
            self.row(name=self.str_value("Ada"), surname=self.str_value(MARKER),
                     email=self.str_value(self.email_a), externalId=self.int_value(big)),
            self.row(name=self.str_value("Alan"), surname=self.str_value(MARKER),
                     email=self.str_value(self.email_b)),
        ]), timeout=TIMEOUT)
        expect_equal(len(response.rows), 2, "Insert row count")
        a, b = (self.plain_row(r) for r in response.rows)
        for row, name, email in ((a, "Ada", self.email_a), (b, "Alan", self.email_b)):
            check(isinstance(row.get("id"), int) and row["id"] > 0,
                  f"Insert: no id from the sequence in {row}")
            check(row.get("lastchange") is not None, f"Insert: no lastchange default in {row}")
            expect_equal((row.get("name"), row.get("surname"), row.get("email")),
                         (name, MARKER, email), "Insert: stored row")
            check("externalId" in row, f"Insert: the stored row lacks externalId: {row}")
        expect_equal(a["externalId"], big, "Insert: externalId 2^53+1 exact")
        expect_equal(b["externalId"], None, "Insert: externalId left out is NULL")
        check(a["id"] != b["id"], "Insert: both rows got the same id")
        self.id_a, self.id_b = a["id"], b["id"]
        expect_equal(self.get_one("users", self.id_a), a, "BatchGet of the inserted row")
        ok(f"Insert: users {self.id_a} and {self.id_b} (ids from the sequence, lastchange "
           "set, 2^53+1 exact, omitted column NULL)")

        # A foreign-key violation is FAILED_PRECONDITION, and nothing is inserted.
        self.expect_error(
            self.grpc.StatusCode.FAILED_PRECONDITION,
            lambda: self.data.Insert(self.pb.InsertRequest(entity="users_groups", rows=[
                self.row(user_id=self.int_value(self.id_a), group_id=self.int_value(13)),
                self.row(user_id=self.int_value(MISSING_ID), group_id=self.int_value(13)),
            ]), timeout=TIMEOUT),
            "Insert users_groups with a missing user")
        linked = self.batch_get("users_groups", [self.id_a], key_column="user_id").results[0]
        check(not linked.found, "Insert: a failed multi-row insert left a row behind")
        ok("Insert with a foreign-key violation: FAILED_PRECONDITION, all or nothing")

    def update(self):
        read = self.batch_get("users", [self.id_a], columns=["lastchange"]).results[0]
        check(read.found, f"Update: user {self.id_a} not found")
        version = read.rows[0].fields["lastchange"]
        check(version.WhichOneof("kind") == "timestamp_value",
              f"Update: lastchange is {version}, want a timestamp_value")
        before = self.get_one("users", self.id_a)

        response = self.data.Update(self.pb.UpdateRequest(entity="users", row=self.row(
            id=self.int_value(self.id_a), lastchange=version,
            name=self.str_value("Augusta"))), timeout=TIMEOUT)
        after = self.plain_row(response.row)
        expect_equal(after["name"], "Augusta", "Update: new name")
        for column in ("id", "surname", "email", "externalId"):
            expect_equal(after.get(column), before[column], f"Update: unchanged {column}")
        check(after["lastchange"] > before["lastchange"],
              f"Update: lastchange {after['lastchange']} not after {before['lastchange']}")
        expect_equal(self.get_one("users", self.id_a), after, "BatchGet after Update")
        ok(f"Update user {self.id_a} with the lastchange read: name changed, version bumped, "
           "other columns kept")

        # The same version again is stale now.
        self.expect_error(
            self.grpc.StatusCode.ABORTED,
            lambda: self.data.Update(self.pb.UpdateRequest(entity="users", row=self.row(
                id=self.int_value(self.id_a), lastchange=version,
                name=self.str_value("Stale"))), timeout=TIMEOUT),
            "stale Update", "lastchange")
        expect_equal(self.get_one("users", self.id_a), after, "row after the stale Update")
        ok("Update with the old lastchange: ABORTED, row unchanged")

        self.expect_error(
            self.grpc.StatusCode.NOT_FOUND,
            lambda: self.data.Update(self.pb.UpdateRequest(entity="users", row=self.row(
                id=self.int_value(MISSING_ID), lastchange=version,
                name=self.str_value("Nobody"))), timeout=TIMEOUT),
            "Update of a missing row")
        ok("Update of a missing row: NOT_FOUND")
        self.version_a = response.row.fields["lastchange"]
        self.stale_version_a = version

    def page(self):
        # All users, 3 at a time, following next_page_token to the end.
        token, pages, ids = "", 0, []
        while True:
            response = self.data.Page(self.pb.PageRequest(
                entity="users", page_size=3, page_token=token, columns=["id", "email"]),
                timeout=TIMEOUT)
            pages += 1
            check(pages < 100000, "Page: more pages than users can fill")
            check(len(response.rows) <= 3, f"Page {pages}: {len(response.rows)} rows > page_size 3")
            for row in response.rows:
                expect_equal(sorted(row.fields), ["email", "id"], f"Page {pages} columns")
                ids.append(row.fields["id"].int64_value)
            if not response.next_page_token:
                break
            check(len(response.rows) == 3,
                  f"Page {pages}: {len(response.rows)} rows but a next_page_token")
            token = response.next_page_token
        expect_equal(ids, sorted(set(ids)), "Page: ids in primary-key order, no repeats")
        missing = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, self.id_a, self.id_b} - set(ids)
        check(not missing, f"Page: users {sorted(missing)} never came")
        ok(f"Page users, page_size 3: {len(ids)} rows in {pages} pages, in id order, "
           "no repeats, no gaps")

        # Filters and ordering: this run's rows, by name descending.
        response = self.data.Page(self.pb.PageRequest(
            entity="users", columns=["name"],
            filters=[
                self.pb.Filter(column="surname", op=self.pb.Filter.EQUAL,
                               value=self.str_value(MARKER)),
                self.pb.Filter(column="email", op=self.pb.Filter.IN,
                               values=[self.str_value(self.email_a),
                                       self.str_value(self.email_b)]),
            ],
            order_by=[self.pb.OrderBy(column="name", descending=True)]), timeout=TIMEOUT)
        expect_equal([r.fields["name"].string_value for r in response.rows],
                     ["Augusta", "Alan"], "Page filtered by surname and email IN, name desc")
        expect_equal(response.next_page_token, "", "Page filtered: next_page_token at the end")
        ok("Page with EQUAL and IN filters, ordered by name descending")

    def delete(self):
        # With expected_version, a stale version is refused.
        self.expect_error(
            self.grpc.StatusCode.ABORTED,
            lambda: self.data.Delete(self.pb.DeleteRequest(
                entity="users", keys=[self.int_value(self.id_a)],
                expected_version=self.stale_version_a), timeout=TIMEOUT),
            "Delete with a stale expected_version")
        check(self.get_one("users", self.id_a) is not None,
              "Delete with a stale expected_version deleted the row")
        response = self.data.Delete(self.pb.DeleteRequest(
            entity="users", keys=[self.int_value(self.id_a)],
            expected_version=self.version_a), timeout=TIMEOUT)
        expect_equal([self.plain(k) for k in response.deleted_keys], [self.id_a],
                     "Delete with the current expected_version")
        ok(f"Delete user {self.id_a} with expected_version: stale ABORTED, current deleted")

        keys = [self.id_b, MISSING_ID, self.id_a]
        response = self.data.Delete(self.pb.DeleteRequest(
            entity="users", keys=[self.int_value(k) for k in keys]), timeout=TIMEOUT)
        expect_equal([self.plain(k) for k in response.deleted_keys], [self.id_b],
                     f"Delete {keys}: deleted_keys")
        results = self.batch_get("users", [self.id_a, self.id_b]).results
        check(not any(r.found for r in results), "Delete: a deleted user is still found")
        ok(f"Delete users [{self.id_b}, missing, already deleted]: only {self.id_b} reported")

    def errors(self):
        code = self.grpc.StatusCode.INVALID_ARGUMENT
        self.expect_error(code, lambda: self.batch_get("no_such_entity", [1]),
                          "BatchGet of an unknown entity", "no_such_entity")
        self.expect_error(code, lambda: self.data.DescribeEntity(
            self.pb.DescribeEntityRequest(entity="no_such_entity"), timeout=TIMEOUT),
            "DescribeEntity of an unknown entity", "no_such_entity")
        self.expect_error(code, lambda: self.data.BatchGet(self.pb.BatchGetRequest(
            entity="users", keys=[self.str_value("1")]), timeout=TIMEOUT),
            "BatchGet with a string key for a bigint", "int64_value", "string_value")
        self.expect_error(code, lambda: self.batch_get("users", [1], columns=["no_such_column"]),
                          "BatchGet of an unknown column", "no_such_column")
        ok("errors: unknown entity (BatchGet, DescribeEntity), wrong key type, unknown column "
           "-> INVALID_ARGUMENT naming them")

    def loader_stats(self, before):
        after = self.admin.GetLoaderStats(self.pb.GetLoaderStatsRequest(), timeout=TIMEOUT)
        # This run made at least this many lookups itself (other clients may add more).
        check(after.requests - before.requests >= 10,
              f"GetLoaderStats: requests grew by {after.requests - before.requests}, "
              "want at least this run's 10")
        check(after.keys - before.keys >= after.requests - before.requests,
              "GetLoaderStats: fewer keys than requests")
        check(after.queries > before.queries, "GetLoaderStats: queries did not grow")
        check(after.keys_queried <= after.keys,
              f"GetLoaderStats: keys_queried {after.keys_queried} > keys {after.keys}")
        check(after.dispatch_wait_micros_max <= after.dispatch_wait_micros_total,
              "GetLoaderStats: dispatch wait max above total")
        check(sum(after.keys_per_query_buckets) > 0, "GetLoaderStats: empty histogram")
        ok(f"GetLoaderStats: requests {after.requests}, keys {after.keys}, "
           f"queries {after.queries}, keys_queried {after.keys_queried}")

    def run(self):
        stats_before = self.admin.GetLoaderStats(self.pb.GetLoaderStatsRequest(),
                                                 timeout=TIMEOUT)
        self.cleanup_leftovers()
        self.list_entities()
        self.describe_entity()
        self.batch_get_by_primary_key()
        self.batch_get_one_to_many()
        self.stream_batch_get()
        self.insert()
        self.update()
        self.page()
        self.delete()
        self.errors()
        self.loader_stats(stats_before)


def main(argv):
    if len(argv) != 2:
        print(f"usage: {argv[0]} HOST:PORT", file=sys.stderr)
        return 2
    target = argv[1]
    try:
        import grpc
    except ImportError:
        print("FAIL python: grpc is missing; run with /usr/bin/python3 after "
              "`apt-get install -y python3-grpcio python3-protobuf`", file=sys.stderr)
        return 1

    with tempfile.TemporaryDirectory(prefix="rowgate-python-stubs-") as stubs:
        try:
            pb, pb_grpc = generate_stubs(stubs)
            with grpc.insecure_channel(target) as channel:
                try:
                    grpc.channel_ready_future(channel).result(timeout=15)
                except grpc.FutureTimeoutError:
                    raise CheckFailed(f"no rowgate reachable at {target} within 15 s")
                Example(grpc, pb, pb_grpc, channel).run()
        except CheckFailed as e:
            print(f"FAIL python: {e}", file=sys.stderr)
            return 1
        except grpc.RpcError as e:
            print(f"FAIL python: unexpected {e.code()}: {e.details()}", file=sys.stderr)
            import traceback
            traceback.print_exc()
            return 1
    print("PASS python: every check passed", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
