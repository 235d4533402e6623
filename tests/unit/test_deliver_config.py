"""Destinations YAML: what loads, and errors that name the file, the line and the field."""

from __future__ import annotations

import textwrap

import pytest

from pipeline.deliver.config import DEFAULT_SCHEDULE_MS, load_destinations
from pipeline.errors import ConfigError

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
ENV = {"CRM_SECRET": f"{SECRET} whsec_QUJD", "CRM_TOKEN": "Bearer t0k"}


def load(text: str, env: dict[str, str] | None = None):
    return load_destinations("d.yaml", textwrap.dedent(text), env=ENV if env is None else env)


def test_a_full_destination_loads():
    dests = load("""\
        destinations:
          crm:
            type: webhook
            url: https://crm.example.com/hooks
            secret: {env: CRM_SECRET}
            headers: {X-Team: growth, Authorization: {env: CRM_TOKEN}}
            format: segment
            timeout: 2s
            concurrency: 4
            rate_limit: 20
            batch: {max: 50, wait: 100ms}
            retry: {schedule: [0s, 1s, 1m], max_age: 1h}
            order: unordered
          slack: {type: webhook, url: "http://hooks.slack.test/x", format: slack, batch: 1}
        """)
    crm = dests["crm"]
    assert len(crm.secrets) == 2  # a rotation: both sign
    assert crm.headers == (("X-Team", "growth"), ("Authorization", "Bearer t0k"))
    assert (crm.format, crm.timeout_ms, crm.concurrency, crm.rate_limit) == ("segment", 2000, 4, 20)
    assert (crm.batch.max_records, crm.batch.wait_ms) == (50, 100)
    assert crm.retry.schedule_ms == (0, 1000, 60_000)
    assert crm.retry.max_age_ms == 3_600_000
    assert not crm.per_person
    slack = dests["slack"]
    assert slack.retry.schedule_ms == DEFAULT_SCHEDULE_MS
    assert slack.per_person
    assert slack.secrets == ()
    assert slack.batch.max_records == 1
    assert "t0k" not in repr(crm)
    assert "MfKQ" not in repr(crm)


def test_a_secret_from_a_file(tmp_path):
    (tmp_path / "secret").write_text(SECRET + "\n")
    path = tmp_path / "d.yaml"
    path.write_text("destinations:\n  a: {type: webhook, url: http://x, secret: {file: secret}}\n")
    assert len(load_destinations(path, env={})["a"].secrets) == 1


def test_topology_keys_may_sit_beside_destinations():
    dests = load("""\
        version: 1
        name: shop
        triggers: {}
        destinations:
          email: {type: webhook, url: "http://mail.test/in"}
        """)
    assert [d.name for d in dests] == ["email"]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("destinations:\n  crm: {type: webhook, url: http://x, timeout: soon}\n",
         "d.yaml:2: destinations.crm.timeout: expected a duration like 30s, 5m or 500ms, "
         "got 'soon'"),
        ("destinations:\n  crm:\n    type: webhook\n    url: http://x\n    secret: whsec_abc\n",
         "d.yaml:5: destinations.crm.secret: expected a reference {env: NAME} or {file: PATH}, "
         "never the secret itself"),
        ("destinations:\n  crm:\n    type: webhook\n    url: http://x\n    secret: {env: NOPE}\n",
         "d.yaml:5: destinations.crm.secret.env: expected environment variable NOPE to be set"),
        ("destinations:\n  crm: {type: webhook, url: ftp://x}\n",
         "d.yaml:2: destinations.crm.url: expected an http:// or https:// URL, got 'ftp://x'"),
        ("destinations:\n  crm: {url: http://x}\n",
         "d.yaml:2: destinations.crm.type: expected this field (it is required)"),
        ("destinations:\n  crm: {type: email, url: http://x}\n",
         "d.yaml:2: destinations.crm.type: expected webhook, got 'email'"),
        ("destinations:\n  crm: {type: webhook, url: http://x, format: xml}\n",
         "d.yaml:2: destinations.crm.format: expected pulse or segment or slack, got 'xml'"),
        ("destinations:\n  crm: {type: webhook, url: http://x, order: random}\n",
         "d.yaml:2: destinations.crm.order: expected per_person or unordered, got 'random'"),
        ("destinations:\n  crm:\n    type: webhook\n    url: http://x\n    batch: {max: 0}\n",
         "d.yaml:5: destinations.crm.batch.max: expected an integer >= 1, got 0"),
        ("destinations:\n  crm:\n    type: webhook\n    url: http://x\n    retry:\n"
         "      schedule: [0s, 5s, often]\n",
         "d.yaml:6: destinations.crm.retry.schedule[2]: expected a duration"),
        ("destinations:\n  crm: {type: webhook, url: http://x, concurency: 3}\n",
         "d.yaml:2: destinations.crm.concurency: expected one of"),
        ("destinations:\n  crm: {type: webhook, url: http://x, rate_limit: -1}\n",
         "d.yaml:2: destinations.crm.rate_limit: expected a number > 0, got -1"),
        ("destinations:\n  dlq: {type: webhook, url: http://x}\n",
         "d.yaml:2: destinations.dlq: expected a name of letters, digits, _ and - (not dlq)"),
        ("destinations:\n  crm:\n    type: webhook\n    url: http://x\n"
         "    headers: {webhook-id: x}\n",
         "d.yaml:5: destinations.crm.headers.webhook-id: expected a header Pulse does not set"),
        ("destinations: {}\n", "d.yaml:1: destinations: expected at least one destination"),
        ("triggers: {}\n", "d.yaml:1: destinations: expected a `destinations:` mapping"),
        ("destinations: [a\n", "d.yaml:2: not valid YAML"),
    ],
)  # fmt: skip
def test_errors_name_file_line_and_field(text, message):
    with pytest.raises(ConfigError) as err:
        load_destinations("d.yaml", text, env={})
    assert str(err.value).startswith(message), str(err.value)


def test_a_secret_that_is_not_base64_is_refused():
    with pytest.raises(ConfigError, match=r"d.yaml:2: destinations.a.secret: expected whsec_"):
        load("destinations:\n  a: {type: webhook, url: http://x, secret: {env: BAD}}\n",
             env={"BAD": "whsec_***"})  # fmt: skip


def test_shipped_example_loads():
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    dests = load_destinations(root / "examples" / "destinations.yaml",
                              env={"PULSE_WEBHOOK_SECRET": SECRET})  # fmt: skip
    assert len(dests) >= 2


def test_cli_check_validates_and_warns_about_unconfigured_destinations(tmp_path, capsys):
    from pathlib import Path

    from pipeline.cli.main import main

    root = Path(__file__).resolve().parents[2]
    good = tmp_path / "d.yaml"
    good.write_text("destinations:\n  crm: {type: webhook, url: http://x}\n")
    assert main(["deliver", "check", "--destinations", str(good),
                 "--topology", str(root / "topologies" / "commerce.yaml")]) == 0  # fmt: skip
    out = capsys.readouterr()
    assert "crm: pulse to http://x" in out.out
    assert "destination 'email' has no entry" in out.err
    assert "'crm'" not in out.err
    bad = tmp_path / "bad.yaml"
    bad.write_text("destinations:\n  crm: {type: webhook, url: http://x, timeout: soon}\n")
    assert main(["deliver", "check", "--destinations", str(bad)]) == 2
    assert f"{bad}:2: destinations.crm.timeout: expected a duration" in capsys.readouterr().err
