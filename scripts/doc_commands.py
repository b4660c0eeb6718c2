#!/usr/bin/env python3
"""Runs every command that the README and the guide pages show, exactly as
written, so that a command that stops working fails the test script.

A command is a line of a ```sh, ```bash or ```text block (joined over
trailing backslashes, without its trailing `# comment`), or an inline code
span that starts with `cargo `, `scripts/`, `python3 ` or `curl `. Each must match one rule below,
which says how it runs: to its end, until it shows its first progress (the
long measurements), as the gateway service the next commands talk to, or
from .ci/run. A command that no rule covers fails the run, so that a new one
is never left unrun.

    python3 scripts/doc_commands.py list   # the commands and how each runs
    python3 scripts/doc_commands.py run    # runs them
    python3 scripts/doc_commands.py run -p gateway   # only those holding the text
"""

import glob
import os
import re
import signal
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PAGES = ["README.md", "cache-core/docs/*.md", "*/README.md", "examples/*/README.md"]
SHELL_BLOCKS = {"sh", "bash", "shell", "text", "console"}
# The settings that would point a command at a deployment instead of the
# defaults it documents ("with no setup").
DEPLOYMENT = ["REDIS_URL", "REDIS_CLUSTER_NODES", "REDIS_SENTINELS", "REDIS_SENTINEL_MASTER",
              "DATABASE_URL", "GATEWAY_ADDR", "GATEWAY_ADMIN_TOKEN"]
GATEWAY = "http://127.0.0.1:8080"

# (pattern, how it runs, what its output must show). "end": to its end;
# "progress": until it reports its first round (then stopped: a full run
# takes minutes); "gateway": the service the "session" commands talk to;
# "session": against that service, after it; "ci": .ci/run calls it as written.
RULES = [
    (r"scripts/test\.sh", "ci", None),
    (r"scripts/compat\.sh", "ci", None),
    (r"cargo fmt --all -- --check", "ci", None),
    (r"python3 scripts/doc_commands\.py list", "end", r"ci +\S+ scripts/test\.sh"),
    (r"cargo doc -p cache-core --open", "end", r"Generated|Opening|Finished"),
    (r"cargo run --example \w+", "end", None),
    (r"cargo run -p gateway", "gateway", r"gateway listening on"),
    (r"curl -s localhost:8080/v1/prices/[\w.-]+", "session", r'"model"'),
    (r"TOKEN=\$\(curl .*/v1/login .*\)", "session", None),
    (r"curl -s -X POST localhost:8080/v1/chat .*", "session", r'"seq"'),
    (r"cargo run -p gateway --bin loadgen -- .*", "session", r"req/s, p50[\s\S]*hit ratio"),
    (r"cargo run --release --example bench -- (--svg \S+|--cluster)", "progress", r"round 1 of"),
    (r"cargo run --release --example bench -- --cases [\w,]+", "end", r"ops/s"),
]


def pages():
    found = []
    for pattern in PAGES:
        for path in sorted(glob.glob(os.path.join(ROOT, pattern))):
            rel = os.path.relpath(path, ROOT)
            if rel not in found and "/target/" not in path:
                found.append(rel)
    return found


def strip_comment(line):
    """A shell line without its trailing comment (`cmd   # says what`)."""
    return re.sub(r"\s{2,}#\s.*$", "", line).strip()


def commands():
    """Every command of every page: (page, line number, command)."""
    found = []
    for page in pages():
        with open(os.path.join(ROOT, page), encoding="utf-8") as file:
            lines = file.read().splitlines()
        fence, pending, start = None, "", 0
        for number, line in enumerate(lines, 1):
            stripped = line.strip()
            if stripped.startswith("```"):
                fence = None if fence is not None else stripped[3:].strip().lower()
                continue
            if fence is None:
                for span in re.findall(r"`((?:cargo |scripts/\w|python3 |curl )[^`]*)`", line):
                    found.append((page, number, span.strip()))
            elif fence in SHELL_BLOCKS and stripped and not stripped.startswith("#"):
                if not pending:
                    start = number
                if stripped.endswith("\\"):
                    pending += stripped[:-1].rstrip() + " "
                    continue
                found.append((page, start, strip_comment(pending + stripped)))
                pending = ""
    return found


def rule_of(command):
    for pattern, how, expect in RULES:
        if re.fullmatch(pattern, command):
            return how, expect
    return None, None


def environment():
    env = {k: v for k, v in os.environ.items() if k not in DEPLOYMENT}
    # `cargo doc --open` opens the docs with $BROWSER: `true` opens nothing.
    env["BROWSER"] = "true"
    return env


def shell(command, timeout, env):
    """Runs `command` in bash from the root; its exit code and output."""
    try:
        done = subprocess.run(["bash", "-c", command], cwd=ROOT, env=env, timeout=timeout,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        return done.returncode, done.stdout
    except subprocess.TimeoutExpired as expired:
        output = expired.stdout or b""
        return "timed out", output.decode(errors="replace") if isinstance(output, bytes) else output


def until(command, pattern, timeout, env):
    """Starts `command` (its output in a file, so that a chatty service never
    blocks on a full pipe), waits until that output shows `pattern` or the
    command ends; the process, the status and the output so far."""
    log = tempfile.NamedTemporaryFile(prefix="doc-command-", suffix=".log", delete=False)
    process = subprocess.Popen(["bash", "-c", command], cwd=ROOT, env=env, stdout=log,
                               stderr=subprocess.STDOUT, start_new_session=True)
    process.log = log.name
    deadline, status = time.time() + timeout, "timed out"
    while time.time() < deadline:
        ended = process.poll() is not None
        if re.search(pattern, output_of(process)):
            status = 0
            break
        if ended:
            status = process.returncode
            break
        time.sleep(0.1)
    return process, status, output_of(process)


def output_of(process):
    with open(process.log, encoding="utf-8", errors="replace") as file:
        return file.read()


def stop(process):
    """Stops a command started by `until`: its exit code and its output."""
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    output = output_of(process)
    os.unlink(process.log)
    return process.returncode, output


class Run:
    def __init__(self):
        self.passed, self.failed = 0, 0

    def report(self, where, command, ok, output=""):
        label = f"doc command {where} `{command}`"
        if ok:
            self.passed += 1
            print(f"{label} ... ok", flush=True)
        else:
            self.failed += 1
            print(f"{label} ... FAILED", flush=True)
            print(output[-6000:], flush=True)

    def check(self, where, command, expect, status, output):
        shown = expect is None or re.search(expect, output) is not None
        self.report(where, command, status == 0 and shown,
                    f"exit {status}; expected output matching {expect!r}\n{output}")


def ci_calls(command):
    with open(os.path.join(ROOT, ".ci/run"), encoding="utf-8") as file:
        return any(line.strip() == command for line in file)


def gateway_session(run, gateway, session, env):
    """The gateway as the README starts it, the session's commands against
    it in one shell (TOKEN carries over), each with its own exit status,
    then a clean stop."""
    (where, command, expect) = gateway
    process, status, seen = until(command, expect, 900, env)
    run.check(where, command, expect, status, seen)
    if status == 0:
        script = ""
        for index, (_, each, _) in enumerate(session):
            script += f"echo '@@@ {index}'\n{each}\necho; echo \"@@@ status $?\"\n"
        _, output = shell(script, 300, env)
        chunks = re.split(r"^@@@ (\d+)$", output, flags=re.M)
        ran = dict(zip(chunks[1::2], chunks[2::2]))
        for index, (where_s, each, expect_s) in enumerate(session):
            chunk = ran.get(str(index), "")
            code = re.search(r"^@@@ status (\d+)$", chunk, flags=re.M)
            status_s = int(code.group(1)) if code else "not run"
            run.check(where_s, each, expect_s, status_s, chunk)
    code, output = stop(process)
    run.report(where, f"{command} (stopped with SIGTERM)",
               code == 0 and "gateway stopped" in output, output)


def distinct(found):
    """Each command once, with every place that shows it, in page order."""
    places = {}
    for page, number, command in found:
        places.setdefault(command, []).append(f"{page}:{number}")
    return [(",".join(where), command) for command, where in places.items()]


def main():
    mode = sys.argv[1] if len(sys.argv) > 1 else "run"
    only = sys.argv[2] if len(sys.argv) > 2 else ""
    run, env = Run(), environment()
    gateway, session = None, []
    for where, command in distinct(commands()):
        how, expect = rule_of(command)
        if only not in command and how != "session":
            continue
        if mode == "list":
            print(f"{how or 'NOT COVERED':9} {where} {command}")
            continue
        if how is None:
            run.report(where, command, False,
                       "no rule in scripts/doc_commands.py says how to run it: add one")
        elif how == "ci":
            run.report(where, command, ci_calls(command), ".ci/run does not call it as written")
        elif how == "end":
            status, output = shell(command, 1200, env)
            run.check(where, command, expect, status, output)
        elif how == "progress":
            process, status, seen = until(command, expect, 1800, env)
            stop(process)
            run.check(where, command, expect, status, seen)
        elif how == "gateway":
            gateway = (where, command, expect)
        elif how == "session":
            session.append((where, command, expect))
    if mode == "list":
        return 0
    if gateway is not None and session:
        gateway_session(run, gateway, session, env)
    elif only in "cargo run -p gateway":
        run.report("README.md", "cargo run -p gateway", False, "the gateway commands are gone")
    print(f"doc commands: {run.passed} passed, {run.failed} failed", flush=True)
    return 1 if run.failed else 0


if __name__ == "__main__":
    sys.exit(main())
