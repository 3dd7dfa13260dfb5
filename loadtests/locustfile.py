"""Locust users that load the API the way a feed's upload pipeline would.

Each user loops over one weighted choice of action (no think time unless ``--think-s``):

| action | dev mix | clip60 mix | what it sends |
|---|---|---|---|
| new | 60 | 70 | a link to a never-served variant of a pool original |
| copy | 20 | 20 | a link to an edited copy of an earlier upload (see below) |
| exact | 5 | 0 | the very link (same bytes) of an earlier upload |
| read | 10 | 7 | GET /videos/{id} of an earlier upload |
| health | 5 | 3 | GET /healthz |

A copy is a dev benchmark video whose root original is the group of an earlier upload of this
run (a real edit: crop, re-frame, overlay, ...), served as a new variant; when that group has no
edited copies in the pool, a new variant of the earlier upload's own file. Every check sends a
fresh ``uuid``. Links point to ``loadtests/fileserver.py`` (``--pool-url``);
its docstring says what a variant is and why the second variant of a file is judged a visual
duplicate of the first. The dev mix draws new originals from the dev benchmark's non-duplicate
rows (90%) and from the pool's extra, longer files (10%); the clip60 mix serves only the file
named by ``--clip`` (default: the 60 s 720x1280 clip), so its throughput is that clip's.

Outcomes, as locust records them:
- 2xx: success, under ``POST /check-video-duplicate (<action>)``, ``GET /videos/{id}``,
  ``GET /healthz``;
- 429, or 503 with ``Retry-After``: "shed", a failure under ``... [shed]`` with the error
  ``shed <status> <error code>``; the user then waits Retry-After (at most 10 s) as a polite
  client does. Shed requests are kept out of the latency rows of the real work;
- anything else: a failure under the action's own name with the error ``<status> <error code>``
  (status 0: no HTTP answer; the error is the exception's class).

At the end (``quitting``) the file named by ``--run-out`` receives what locust's CSV does not
hold: the measurement window, every request's latency and outcome, and decisions per action.
"""

from __future__ import annotations

import itertools
import json
import random
import time
import urllib.request
import uuid as uuidlib
from collections import Counter, deque
from dataclasses import dataclass, field

from locust import FastHttpUser, constant, events, task

CHECK = "/check-video-duplicate"
NEW_KINDS = {"original", "distractor", "hard_negative", "same_audio"}
COPY_KINDS = {"copy", "copy_new_audio", "copy_of_copy", "partial", "natural", "exact"}
MIXES = {
    "dev": {"new": 60, "copy": 20, "exact": 5, "read": 10, "health": 5},
    "clip60": {"new": 70, "copy": 20, "exact": 0, "read": 7, "health": 3},
}
MAX_BACKOFF_S = 10.0


@events.init_command_line_parser.add_listener
def _arguments(parser) -> None:
    parser.add_argument("--pool-url", default="", help="base URL of loadtests/fileserver.py")
    parser.add_argument("--mix", choices=sorted(MIXES), default="dev")
    parser.add_argument(
        "--clip", default="vertical_720x1280_60s.mp4", help="the pool file of the clip60 mix"
    )
    parser.add_argument("--think-s", type=float, default=0.0, help="pause between actions, s")
    parser.add_argument(
        "--request-timeout-s",
        type=float,
        default=300.0,
        help="client-side timeout of one request, s",
    )
    parser.add_argument("--run-out", default="", help="write the run's JSON record here")


@dataclass
class Upload:
    uuid: str
    url: str
    name: str
    group: str


@dataclass
class Plan:
    """What the mix may link to, from the file server's /pool.json."""

    originals: list[dict]
    extras: list[dict]
    copies_by_group: dict[str, list[dict]]
    weights: dict[str, int]


@dataclass
class Ledger:
    """Shared by the users of this process (gevent: one thread, so plain structures suffice)."""

    uploads: deque = field(default_factory=lambda: deque(maxlen=2000))
    events: list = field(default_factory=list)
    decisions: Counter = field(default_factory=Counter)
    started: float = 0.0
    tokens: itertools.count = field(default_factory=itertools.count)
    prefix: str = field(default_factory=lambda: uuidlib.uuid4().hex[:8])

    def token(self) -> str:
        return f"{self.prefix}-{next(self.tokens)}"


LEDGER = Ledger()
PLAN: Plan | None = None


def load_plan(pool_url: str, mix: str, clip: str) -> Plan:
    with urllib.request.urlopen(f"{pool_url}/pool.json", timeout=10) as r:
        files = json.load(r)["files"]
    if mix == "clip60":
        chosen = [f for f in files if f["name"] == clip]
        if not chosen:
            raise SystemExit(f"locustfile: the pool has no {clip!r} for the clip60 mix")
        return Plan(chosen, [], {}, MIXES[mix])
    originals = [f for f in files if f["kind"] in NEW_KINDS]
    extras = [f for f in files if f["kind"] == "extra"]
    copies: dict[str, list[dict]] = {}
    for f in files:
        if f["kind"] in COPY_KINDS:
            copies.setdefault(f["group"], []).append(f)
    if not originals and not extras:
        raise SystemExit("locustfile: the pool has no originals")
    return Plan(originals, extras, copies, MIXES[mix])


@events.init.add_listener
def _configure(environment, **_kwargs) -> None:
    opts = environment.parsed_options
    if opts is None:
        return
    Uploader.network_timeout = opts.request_timeout_s
    Uploader.connection_timeout = min(30.0, opts.request_timeout_s)
    Uploader.wait_time = constant(opts.think_s)


@events.test_start.add_listener
def _start(environment, **_kwargs) -> None:
    global PLAN
    opts = environment.parsed_options
    if not opts.pool_url:
        raise SystemExit("locustfile: --pool-url is required")
    PLAN = load_plan(opts.pool_url.rstrip("/"), opts.mix, opts.clip)
    LEDGER.started = time.time()


@events.quitting.add_listener
def _write_run(environment, **_kwargs) -> None:
    opts = environment.parsed_options
    if not opts or not opts.run_out:
        return
    record = {
        "mix": opts.mix,
        "users": opts.num_users,
        "started": LEDGER.started,
        "stopped": time.time(),
        "events": LEDGER.events,
        "decisions": [
            {"action": a, "is_duplicate": d, "path": p, "count": n}
            for (a, d, p), n in sorted(LEDGER.decisions.items())
        ],
    }
    with open(opts.run_out, "w") as f:
        json.dump(record, f)


class Uploader(FastHttpUser):
    wait_time = constant(0)

    @task
    def step(self) -> None:
        weights = PLAN.weights
        action = random.choices(list(weights), list(weights.values()))[0]
        getattr(self, f"do_{action}")()

    def do_new(self) -> None:
        f = self._original()
        self._check("new", self._variant_url(f["name"]), f["name"], f["group"])

    def do_copy(self) -> None:
        earlier = self._earlier()
        if earlier is None:
            return self.do_new()
        copies = PLAN.copies_by_group.get(earlier.group)
        name = random.choice(copies)["name"] if copies else earlier.name
        self._check("copy", self._variant_url(name), name, earlier.group)

    def do_exact(self) -> None:
        earlier = self._earlier()
        if earlier is None:
            return self.do_new()
        self._check("exact", earlier.url, earlier.name, earlier.group)

    def do_read(self) -> None:
        earlier = self._earlier()
        if earlier is None:
            return self.do_health()
        self._call("GET", f"/videos/{earlier.uuid}", "GET /videos/{id}")

    def do_health(self) -> None:
        self._call("GET", "/healthz", "GET /healthz")

    def _original(self) -> dict:
        if PLAN.extras and (not PLAN.originals or random.random() < 0.1):
            return random.choice(PLAN.extras)
        return random.choice(PLAN.originals)

    def _variant_url(self, name: str) -> str:
        return f"{self.environment.parsed_options.pool_url.rstrip('/')}/new/{LEDGER.token()}/{name}"

    @staticmethod
    def _earlier() -> Upload | None:
        return random.choice(LEDGER.uploads) if LEDGER.uploads else None

    def _check(self, action: str, url: str, name: str, group: str) -> None:
        vid = f"lt-{uuidlib.uuid4().hex}"
        body = self._call(
            "POST", CHECK, f"POST {CHECK} ({action})", json={"link": url, "uuid": vid}
        )
        if body is not None:
            LEDGER.uploads.append(Upload(vid, url, name, group))
            LEDGER.decisions[(action, bool(body.get("is_duplicate")), body.get("path", ""))] += 1

    def _call(self, method: str, path: str, name: str, **kwargs) -> dict | None:
        """One request, classified; returns the JSON body of a 2xx answer, else None."""
        t0 = time.time()
        backoff = 0.0
        body = None
        with self.client.request(method, path, name=name, catch_response=True, **kwargs) as resp:
            status = resp.status_code or 0
            code = _error_code(resp)
            retry_after = resp.headers.get("Retry-After") if resp.headers else None
            if 200 <= status < 300:
                outcome = "ok"
                resp.success()
                body = _json(resp) or {}
            elif status == 429 or (status == 503 and retry_after is not None):
                outcome = f"shed {status} {code}"
                resp.request_meta["name"] = f"{name.split(' (')[0]} [shed]"
                resp.failure(outcome)
                backoff = _seconds(retry_after)
            else:
                outcome = f"{status} {code}"
                resp.failure(outcome)
            ms = resp.request_meta.get("response_time") or (time.time() - t0) * 1000
        LEDGER.events.append([round(t0, 3), round(time.time(), 3), name, outcome, round(ms, 1)])
        if backoff:
            time.sleep(min(backoff, MAX_BACKOFF_S))
        return body


def _json(resp) -> dict | None:
    try:
        data = json.loads(resp.content or b"null")
    except (ValueError, TypeError):
        return None
    return data if isinstance(data, dict) else None


def _error_code(resp) -> str:
    if not resp.status_code:
        err = getattr(resp, "error", None)
        return type(err).__name__ if err is not None else "no_response"
    if 200 <= resp.status_code < 300:
        return ""
    body = _json(resp) or {}
    return str(body.get("error") or "-")


def _seconds(value: str | None) -> float:
    try:
        return max(0.0, float(value)) if value is not None else 0.0
    except ValueError:
        return 0.0
