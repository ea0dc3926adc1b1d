#!/usr/bin/env python3
"""Runs a Swift Testing command and reports its progress readably, whatever its output goes to.

    scripts/run-tests.py [--timeout S] [--console FILE] -- swift test --skip-build …

The command is given Swift Testing's event stream (`--event-stream-output-path`, JSON lines) and its own
console output goes to FILE (default: a temporary file). This script prints, as they happen:
- one line per finished test function with the time its cases ran (and per finished suite), `✔` or `✘`;
- every recorded issue (failed expectation, caught error) with its message and source location;
and at the end the ten slowest test cases, then a closing line `tests: N passed, N failed, N skipped`.

When the command runs longer than --timeout seconds it is stopped (SIGTERM, then SIGKILL), and the test cases
that had started and not finished are named with how long they had run. When the command dies of a signal, the
tail of its console output (the crash report) is printed. The exit status is the command's (124 on timeout).
"""
import atexit
import shutil
import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--timeout", type=float, default=1800, help="seconds before the run is stopped (default 1800)")
    parser.add_argument("--console", help="file for the command's own console output")
    parser.add_argument("--events", help="file for the event stream (JSON lines)")
    parser.add_argument("command", nargs=argparse.REMAINDER, help="-- then the test command")
    args = parser.parse_args()
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("no test command given")

    work = tempfile.mkdtemp(prefix="fovea-tests-")
    atexit.register(shutil.rmtree, work, True)
    events_path = args.events or os.path.join(work, "events.jsonl")
    console_path = args.console or os.path.join(work, "console.log")
    open(events_path, "w").close()
    command = command + ["--event-stream-output-path", events_path, "--event-stream-version", "0"]

    report = Report()
    started = time.monotonic()
    with open(console_path, "w") as console, open(events_path) as events:
        child = subprocess.Popen(command, stdout=console, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                 start_new_session=True)
        pending = ""
        timed_out = False
        while True:
            status = child.poll()
            chunk = events.read()
            if chunk:
                pending += chunk
                *lines, pending = pending.split("\n")
                for line in lines:
                    report.record(line, time.monotonic() - started)
            if status is not None:
                break
            if time.monotonic() - started > args.timeout:
                timed_out = True
                stop(child)
                break
            time.sleep(0.2)
        for line in (pending + events.read()).split("\n"):
            report.record(line, time.monotonic() - started)
        status = child.wait()

    elapsed = time.monotonic() - started
    if timed_out:
        print(f"\nTIMEOUT: the tests ran longer than {args.timeout:.0f} s and were stopped.", flush=True)
        report.print_unfinished()
    elif status < 0 or (status != 0 and not report.run_ended):
        print(f"\nThe test process ended with status {status} before the run finished; last console lines "
              f"({console_path}):", flush=True)
        with open(console_path, errors="replace") as console:
            for line in console.readlines()[-60:]:
                print("  " + line.rstrip("\n"))
        report.print_unfinished()
    report.print_summary(elapsed)
    if timed_out:
        sys.exit(124)
    if status < 0:
        sys.exit(128 - status)
    if status == 0 and report.failed:
        sys.exit(1)
    sys.exit(status)


def stop(child):
    """SIGTERM to the command's process group, SIGKILL if it is still there 10 s later."""
    for sig, wait in ((signal.SIGTERM, 10), (signal.SIGKILL, 10)):
        try:
            os.killpg(child.pid, sig)
        except ProcessLookupError:
            return
        try:
            child.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            pass


class Report:
    """What the event stream has said so far."""

    def __init__(self):
        self.names = {}          # test id -> display name
        self.suites = set()      # ids of suites
        self.started = {}        # test id -> instant its function or suite started
        self.case_started = {}   # (test id, case id) -> (instant, case name)
        self.cases = []          # (seconds, test id, case name) of finished cases
        self.busy = {}           # test id -> seconds its cases ran, summed (tests of a suite, for suites)
        self.failing = set()     # test ids with a failing issue
        self.passed = self.failed = self.skipped = 0
        self.run_ended = False

    def name(self, test_id):
        suite = self.suite_of(test_id)
        own = self.names.get(test_id, test_id)
        return f"{self.names.get(suite, suite)} › {own}" if suite and suite != test_id else own

    def suite_of(self, test_id):
        best = None
        for suite in self.suites:
            if (test_id == suite or test_id.startswith(suite + "/")) and (best is None or len(suite) > len(best)):
                best = suite
        return best

    def record(self, line, clock):
        line = line.strip()
        if not line:
            return
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            return
        payload = record.get("payload", {})
        if record.get("kind") == "test":
            self.names[payload["id"]] = payload.get("displayName") or payload.get("name", payload["id"])
            if payload.get("kind") == "suite":
                self.suites.add(payload["id"])
            return
        if record.get("kind") != "event":
            return
        kind = payload.get("kind")
        test_id = payload.get("testID")
        instant = payload.get("instant", {}).get("absolute", clock)
        case = payload.get("_testCase") or {}
        if kind == "testStarted" and test_id:
            self.started[test_id] = instant
        elif kind == "testCaseStarted" and test_id:
            wall = payload.get("instant", {}).get("since1970", time.time())
            self.case_started[(test_id, case.get("id"))] = (instant, case.get("displayName"), wall)
        elif kind == "testCaseEnded" and test_id:
            begun, case_name, _ = self.case_started.pop((test_id, case.get("id")), (instant, None, 0))
            self.cases.append((instant - begun, test_id, case_name))
            self.busy[test_id] = self.busy.get(test_id, 0) + instant - begun
        elif kind == "issueRecorded":
            issue = payload.get("issue", {})
            failure = issue.get("isFailure", not issue.get("isKnown", False))
            if test_id and failure:
                self.failing.add(test_id)
                if self.suite_of(test_id):
                    self.failing.add(self.suite_of(test_id))
            messages = [m.get("text", "") for m in payload.get("messages", [])]
            where = payload.get("sourceLocation") or issue.get("sourceLocation") or {}
            location = f"{where.get('fileID', '?')}:{where.get('line', '?')}" if where else ""
            print(f"{'✘' if failure else '⚠'} ISSUE in {self.name(test_id) if test_id else 'the run'} {location}", flush=True)
            for message in messages:
                for text_line in message.splitlines():
                    print("    " + text_line, flush=True)
        elif kind == "testSkipped" and test_id:
            if test_id not in self.suites:
                self.skipped += 1
            print(f"- skipped  {self.name(test_id)}", flush=True)
        elif kind == "testEnded" and test_id:
            # A parameterized test's time is what its cases ran, summed (they may run side by side); another
            # test's is its span, exact when tests run one at a time (--no-parallel).
            span = instant - self.started.pop(test_id, instant)
            seconds = self.busy.get(test_id, span)
            suite = self.suite_of(test_id)
            if suite and suite != test_id:
                self.busy[suite] = self.busy.get(suite, 0) + seconds
            ok = test_id not in self.failing
            if test_id not in self.suites and test_id not in self.busy:
                self.cases.append((seconds, test_id, None))
            if test_id in self.suites:
                print(f"{'✔' if ok else '✘'} suite {seconds:8.2f} s  {self.names.get(test_id, test_id)}"
                      f"   [{clock / 60:5.1f} min]", flush=True)
            else:
                if ok:
                    self.passed += 1
                else:
                    self.failed += 1
                print(f"{'✔' if ok else '✘'} {seconds:8.2f} s  {self.name(test_id)}", flush=True)
        elif kind == "runEnded":
            self.run_ended = True

    def print_unfinished(self):
        if not self.case_started:
            print("No test case was running.", flush=True)
            return
        print("Started and not finished:", flush=True)
        for (test_id, _), (_, case_name, wall) in sorted(self.case_started.items(), key=lambda item: item[1][0]):
            suffix = f" [{case_name}]" if case_name else ""
            print(f"  {self.name(test_id)}{suffix}, running for {time.time() - wall:.0f} s", flush=True)

    def print_summary(self, elapsed):
        print(f"\nTen slowest test cases (of {len(self.cases)}):", flush=True)
        for seconds, test_id, case_name in sorted(self.cases, reverse=True)[:10]:
            suffix = f" [{case_name}]" if case_name else ""
            print(f"  {seconds:8.2f} s  {self.name(test_id)}{suffix}", flush=True)
        print(f"Wall time of the test run: {elapsed:.1f} s", flush=True)
        print(f"tests: {self.passed} passed, {self.failed} failed, {self.skipped} skipped", flush=True)


if __name__ == "__main__":
    main()
