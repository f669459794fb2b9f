#!/usr/bin/python3
"""Keeps README.md's buf curl session true: runs every `$ buf curl ...`
command of its console blocks, in order, against a real rowgate over a fresh
demo database, and compares what it prints with what the README shows.

  readme_test.py ROWGATE_BINARY

In the README's outputs a line that is only "…" stands for any number of
lines. Timestamps differ from run to run: each one the README shows is
mapped to the one this run printed in the same place, and the mapping is
applied to later commands too (an Update sends the lastchange a BatchGet
printed)."""
import os
import re
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
README_ADDRESS = "127.0.0.1:50051"
TIMESTAMP = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z")


def sessions(readme):
    """(command, expected output lines) for each `$ buf curl` in console blocks."""
    steps, block, current = [], False, None
    for line in readme.splitlines():
        if line.startswith("```console"):
            block = True
            continue
        if block and line.startswith("```"):
            block = False
            current = None
            continue
        if not block:
            continue
        if line.startswith("$ "):
            current = (line[2:], [])
            steps.append(current)
        elif current is not None:
            current[1].append(line)
    return [s for s in steps if s[0].startswith("buf curl")]


class Timestamps:
    def __init__(self):
        self.mapping = {}

    def apply(self, text):
        return TIMESTAMP.sub(lambda m: self.mapping.get(m.group(0), m.group(0)), text)

    def lines_match(self, expected, actual):
        expected = self.apply(expected)
        if expected == actual:
            return True
        # Same line but for timestamps: learn what each README one became.
        exp_ts, act_ts = TIMESTAMP.findall(expected), TIMESTAMP.findall(actual)
        if not exp_ts or len(exp_ts) != len(act_ts):
            return False
        if TIMESTAMP.sub("T", expected) != TIMESTAMP.sub("T", actual):
            return False
        for e, a in zip(TIMESTAMP.finditer(expected), TIMESTAMP.finditer(actual)):
            self.mapping.setdefault(e.group(0), a.group(0))
        return True


def matches(expected, actual, stamps, ei=0, ai=0):
    """Whether `actual` lines match `expected` lines, "…" lines matching any run."""
    while ei < len(expected):
        if expected[ei].strip() == "…":
            if ei + 1 == len(expected):
                return True
            return any(matches(expected, actual, stamps, ei + 1, k)
                       for k in range(ai, len(actual) + 1))
        if ai >= len(actual) or not stamps.lines_match(expected[ei], actual[ai]):
            return False
        ei, ai = ei + 1, ai + 1
    return ai == len(actual)


def main():
    binary = sys.argv[1]
    pg = os.path.join(ROOT, "deploy", "local", "pg.sh")
    subprocess.run(["bash", pg, "recreatedb", "rowgate_readme"], check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = subprocess.run(["bash", pg, "url", "rowgate_readme"], check=True,
                         capture_output=True, text=True).stdout.strip()
    work = tempfile.mkdtemp()
    port_file = os.path.join(work, "port")
    log = open(os.path.join(work, "server.log"), "w")
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("ROWGATE_") and k != "DATABASE_URL"}
    server = subprocess.Popen(
        [binary, "--listen=127.0.0.1:0", "--port_file=" + port_file,
         "--database_url=" + url], stdout=log, stderr=log, env=env)
    try:
        for _ in range(300):
            if os.path.exists(port_file) and open(port_file).read().strip():
                break
            if server.poll() is not None:
                sys.exit("rowgate exited: " + open(log.name).read())
            time.sleep(0.1)
        address = "127.0.0.1:" + open(port_file).read().strip()
        stamps = Timestamps()
        steps = sessions(open(os.path.join(ROOT, "README.md")).read())
        if len(steps) < 10:
            sys.exit("README shows only %d buf curl commands" % len(steps))
        failures = 0
        for command, expected in steps:
            run = stamps.apply(command).replace(README_ADDRESS, address)
            result = subprocess.run(["bash", "-c", run], capture_output=True,
                                    text=True, timeout=60)
            actual = (result.stdout + result.stderr).rstrip("\n").splitlines()
            while expected and not expected[-1].strip():
                expected.pop()
            if not matches(expected, actual, stamps):
                failures += 1
                print("MISMATCH: $ " + command, file=sys.stderr)
                print("--- README shows:\n" + "\n".join(expected), file=sys.stderr)
                print("--- rowgate printed:\n" + "\n".join(actual), file=sys.stderr)
            else:
                print("ok: $ " + command[:100])
        print("%d passed, %d failed" % (len(steps) - failures, failures))
        sys.exit(1 if failures else 0)
    finally:
        server.terminate()
        server.wait(timeout=20)


if __name__ == "__main__":
    main()
