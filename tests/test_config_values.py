"""Configuration values that used to slip through: each exits 2 naming the key.

Before, ``interval = inf`` or ``1e308`` and a non-JSON list in the environment
ended in a traceback, ``backoff_ticks = [-5, 0]`` and ``interval = 1e-300``
were accepted, and a misspelt variable (``JARVIS_DRYRUN``) was silently
ignored, leaving dry run off.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from jarvis.cli import app
from jarvis.config import ConfigError, load_settings


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)


@pytest.mark.parametrize(
    ("variable", "value", "key"),
    [
        ("JARVIS_LOOP__INTERVAL", "inf", "loop.interval"),
        ("JARVIS_LOOP__INTERVAL", "nan", "loop.interval"),
        ("JARVIS_LOOP__INTERVAL", "1e308", "loop.interval"),
        ("JARVIS_LOOP__INTERVAL", "1e-300", "loop.interval"),
        ("JARVIS_LOOP__OBSERVE_TIMEOUT", "1e308", "loop.observe_timeout"),
        ("JARVIS_RETRY__WINDOW_SECONDS", "1e308", "retry.window_seconds"),
        ("JARVIS_RETRY__BACKOFF_TICKS", "[-5, 0]", "retry.backoff_ticks.0"),
        ("JARVIS_BOUNDS__MAX_TRAFFIC_SHIFT", "nan", "bounds.max_traffic_shift"),
        ("JARVIS_LOG_LEVEL", "verbose", "log_level"),
        ("JARVIS_BREAKERS__PROVIDER_THRESHOLD", "0", "breakers.provider_threshold"),
        ("JARVIS_BREAKERS__COOLDOWN_SECONDS", "inf", "breakers.cooldown_seconds"),
        ("JARVIS_BREAKERS__WINDOW_SECONDS", "0.5", "breakers.window_seconds"),
        ("JARVIS_HTTP__TRUSTED_PROXIES", '["10.0.0.1/8"]', "http.trusted_proxies.0"),
        ("JARVIS_HTTP__TRUSTED_PROXIES", '["alb"]', "http.trusted_proxies.0"),
        ("JARVIS_SCALING__METRIC_MAX_AGE_SECONDS", "1e300", "scaling.metric_max_age_seconds"),
        ("JARVIS_ROLLBACK__WATCH_SECONDS", "1e300", "rollback.watch_seconds"),
        ("JARVIS_ROLLBACK__READY_TIMEOUT_SECONDS", "1e300", "rollback.ready_timeout_seconds"),
        ("JARVIS_AWS__COST_REFRESH_SECONDS", "1e300", "aws.cost_refresh_seconds"),
        ("JARVIS_AWS__COST_RETRY_SECONDS", "1e300", "aws.cost_retry_seconds"),
        ("JARVIS_ROLLBACK__MIN_BASELINE_SAMPLES", str(2**70), "rollback.min_baseline_samples"),
        ("JARVIS_AWS__ENDPOINT_URL", "localhost:5000", "aws.endpoint_url"),
        ("JARVIS_FAILOVER__ENDPOINT_URL", "http://", "failover.endpoint_url"),
        ("JARVIS_CUSTOMERS__DATABASE_URL", "bogus", "customers.database_url"),
        (
            "JARVIS_CUSTOMERS__ACTIVITY__DATABASE_URL",
            "mysql://x/y",
            "customers.activity.database_url",
        ),
        (
            "JARVIS_COST__USAGE_DATABASE_URL",
            "postgresql+asyncpg://h:99999/x",
            "cost.usage_database_url",
        ),
        ("JARVIS_ROUTING__REDIS_URL", "bogus", "routing.redis_url"),
        (
            "JARVIS_CUSTOMERS__SOURCE",
            '{"url": "bogus", "table": "t", '
            '"columns": {"id": "i", "email": "e", "signed_up_at": "s"}}',
            "customers.source.url",
        ),
    ],
)
def test_a_bad_value_is_a_config_error_naming_its_key(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, key: str
) -> None:
    """Out-of-range, infinite and unknown values are refused with the key's dotted name."""
    monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigError, match=rf"\n  {key}: "):
        load_settings()


def test_a_list_that_is_not_json_is_a_config_error(monkeypatch: pytest.MonkeyPatch) -> None:
    """A list given in the environment must be JSON; otherwise the error says so."""
    monkeypatch.setenv("JARVIS_ALLOWLIST", "sim:*:restart")
    with pytest.raises(ConfigError, match=r'"allowlist".*must be JSON'):
        load_settings()


def test_a_nested_value_that_is_not_json_names_its_variable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Of the variables under one section, the error names the one that is not JSON
    (it named only the section), and never quotes its value, which may hold a secret."""
    monkeypatch.setenv("JARVIS_RETRY__MAX_ATTEMPTS", "2")
    monkeypatch.setenv("JARVIS_RETRY__BACKOFF_TICKS", "[1, 2")
    monkeypatch.setenv("JARVIS_LEASE__BACKEND", "postgresql")
    with pytest.raises(ConfigError) as raised:
        load_settings()
    message = str(raised.value)
    assert "JARVIS_RETRY__BACKOFF_TICKS is not JSON" in message
    assert "JARVIS_RETRY__MAX_ATTEMPTS" not in message
    assert "[1, 2" not in message


@pytest.mark.parametrize(
    ("variable", "suggestion"),
    [
        ("JARVIS_DRYRUN", "JARVIS_DRY_RUN"),
        ("JARVIS_LOOP_INTERVAL", "JARVIS_LOOP__INTERVAL"),
        ("JARVIS_DATABASE", "JARVIS_DATABASE_URL"),
        ("JARVIS_CONFG", "JARVIS_CONFIG"),
    ],
)
def test_a_misspelt_variable_is_an_error_naming_the_closest_key(
    monkeypatch: pytest.MonkeyPatch, variable: str, suggestion: str
) -> None:
    """An unknown ``JARVIS_*`` name is refused, not ignored, with the nearest real name."""
    monkeypatch.setenv(variable, "1")
    with pytest.raises(ConfigError, match=rf"{variable}: .*did you mean {suggestion}\?"):
        load_settings()


def test_keys_under_a_mapping_and_the_suites_own_variables_are_accepted(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``JARVIS_PROBES__REDIS__CACHE`` names a mapping key; ``JARVIS_TEST_*`` is not Jarvis's."""
    monkeypatch.setenv("JARVIS_PROBES__REDIS__CACHE", "redis://cache:6379/0")
    monkeypatch.setenv("JARVIS_TEST_ANYTHING", "1")
    monkeypatch.setenv("JARVIS_LOG_LEVEL", "WARNING")
    settings = load_settings()
    assert settings.probes.redis["cache"].get_secret_value() == "redis://cache:6379/0"
    assert settings.log_level == "warning"


def test_trusted_proxies_are_networks_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """``JARVIS_HTTP__TRUSTED_PROXIES`` is a JSON list of CIDRs; unset, no proxy is trusted."""
    assert load_settings().http.trusted_proxies == ()
    monkeypatch.setenv("JARVIS_HTTP__TRUSTED_PROXIES", '["10.0.0.0/8", "2001:db8::/32"]')
    assert [str(n) for n in load_settings().http.trusted_proxies] == ["10.0.0.0/8", "2001:db8::/32"]


def test_config_check_exits_2_on_a_misspelt_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    """The CLI turns the error into exit status 2 and one clear message, not a traceback."""
    monkeypatch.setenv("JARVIS_DRYRUN", "1")
    result = CliRunner().invoke(app, ["config", "check"])
    assert result.exit_code == 2
    assert "did you mean JARVIS_DRY_RUN?" in result.output
    assert "Traceback" not in result.output


def test_config_check_masks_passwords_in_urls(monkeypatch: pytest.MonkeyPatch) -> None:
    """Database and Redis URLs are printed with their passwords replaced by ***."""
    monkeypatch.setenv("JARVIS_DATABASE_URL", "postgresql+asyncpg://jarvis:s3cr3t@db:5432/jarvis")
    monkeypatch.setenv("JARVIS_REDIS_URL", "redis://:hunter2@cache:6379/0")
    result = CliRunner().invoke(app, ["config", "check", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["database_url"] == "postgresql+asyncpg://jarvis:***@db:5432/jarvis"
    assert data["redis_url"] == "redis://:***@cache:6379/0"
    assert "s3cr3t" not in result.output and "hunter2" not in result.output


def test_an_empty_spool_path_is_a_config_error(monkeypatch: pytest.MonkeyPatch) -> None:
    """``JARVIS_SPOOL_PATH=""`` (an unset shell variable) is refused, not read as the directory."""
    monkeypatch.setenv("JARVIS_SPOOL_PATH", "")
    with pytest.raises(ConfigError, match=r"\n  spool_path: .*must name a file"):
        load_settings()


def test_an_unreadable_config_file_is_a_config_error() -> None:
    """A config file that cannot be read is named in a ConfigError, not a traceback.

    /proc/self/mem is a regular file that fails to read (EIO) even for root, who
    can read a file whatever its mode.
    """
    with pytest.raises(ConfigError, match=r"cannot read config file /proc/self/mem: "):
        load_settings("/proc/self/mem")


def test_an_integer_python_will_not_read_is_a_config_error(tmp_path: Path) -> None:
    """tomllib refuses an integer of more than 4,300 digits with a plain ValueError, not a
    TOMLDecodeError: it ended every command in a traceback."""
    config = tmp_path / "big.toml"
    config.write_text(f"[loop]\ninterval = {'9' * 5000}\n")
    with pytest.raises(ConfigError, match=r"big\.toml is not valid TOML: .*4300 digits"):
        load_settings(str(config))


def test_a_directory_given_as_the_config_file_is_named_as_one(tmp_path: Path) -> None:
    """A directory passed as --config is called a directory, not a file that is not there."""
    with pytest.raises(ConfigError, match=r"is a directory, not a config file"):
        load_settings(str(tmp_path))


@pytest.mark.parametrize(
    "url",
    [
        "postgresql+asyncpg://jarvis@db:abc/jarvis",
        "postgresql+asyncpg://jarvis@db:99999/jarvis",
        "postgresql+asyncpg://jarvis@[::1/jarvis",
    ],
)
def test_a_malformed_database_url_is_a_config_error(
    monkeypatch: pytest.MonkeyPatch, url: str
) -> None:
    """A database URL whose port or host cannot be parsed is refused naming ``database_url``."""
    monkeypatch.setenv("JARVIS_DATABASE_URL", url)
    with pytest.raises(ConfigError, match=r"\n  database_url: .*not a valid URL"):
        load_settings()


def test_a_password_with_url_delimiters_is_accepted(monkeypatch: pytest.MonkeyPatch) -> None:
    """``#``, ``/`` and ``?`` unquoted in a password are SQLAlchemy's to read, not a bad port."""
    monkeypatch.setenv("JARVIS_DATABASE_URL", "postgresql+asyncpg://jarvis:p#s/s?@db:5432/jarvis")
    assert load_settings().database_url.endswith("@db:5432/jarvis")


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("redis://cache:abc/0", "not a valid URL"),
        ("http://cache:6379/0", "must start with redis://, rediss:// or unix://"),
        ("redis://cache:6379/0?socket_timeout=abc", "Invalid value for 'socket_timeout'"),
        ("rediss://cache:6379/0?db=one", "Invalid value for 'db'"),
    ],
)
def test_a_malformed_redis_url_is_a_config_error(
    monkeypatch: pytest.MonkeyPatch, url: str, problem: str
) -> None:
    """A Redis URL that redis-py cannot open is refused naming ``redis_url``."""
    monkeypatch.setenv("JARVIS_REDIS_URL", url)
    with pytest.raises(ConfigError, match=rf"\n  redis_url: .*{re.escape(problem)}"):
        load_settings()


@pytest.mark.parametrize("url", ["sqlite+aiosqlite:///", "sqlite+aiosqlite://"])
def test_a_sqlite_url_without_a_file_is_a_config_error(
    monkeypatch: pytest.MonkeyPatch, url: str
) -> None:
    """``sqlite+aiosqlite:///$EMPTY`` is refused: each command would get a database in memory."""
    monkeypatch.setenv("JARVIS_DATABASE_URL", url)
    with pytest.raises(ConfigError, match=r"\n  database_url: .*names no SQLite file"):
        load_settings()


def _customer_email(monkeypatch: pytest.MonkeyPatch, unsubscribe_url: str) -> None:
    monkeypatch.setenv("JARVIS_CUSTOMERS__EMAIL__HOST", "smtp.internal")
    monkeypatch.setenv("JARVIS_CUSTOMERS__EMAIL__SENDER", "hello@example.com")
    monkeypatch.setenv("JARVIS_CUSTOMERS__EMAIL__UNSUBSCRIBE_URL", unsubscribe_url)


@pytest.mark.parametrize(
    "url",
    [
        "http://example.com/unsubscribe?c={customer}",
        "HTTP://example.com/unsubscribe?t={token}",
        "http://127.0.0.1.example.com/u?c={customer}",
        "http://localhost@example.com/u?c={customer}",
        "https:///u?c={customer}",
        "ftp://example.com/u?c={customer}",
        "https://example.com/unsubscribe",
        "https://example.com/u?c={customer}>, <https://other.example/u",
        "https://example.com/u?c={customer}\r\nBcc: all@example.com",
        "https://example.com/u?c={customer} x",
    ],
)
def test_an_unsubscribe_url_one_click_cannot_use_is_a_config_error(
    monkeypatch: pytest.MonkeyPatch, url: str
) -> None:
    """RFC 8058 one-click needs https: plain http to a public host is refused, naming the key."""
    _customer_email(monkeypatch, url)
    with pytest.raises(
        ConfigError, match=r"\n  customers\.email\.unsubscribe_url: .*(https://|one URL)"
    ):
        load_settings()


@pytest.mark.parametrize(
    "url",
    [
        "https://jarvis.example.com/unsubscribe?token={token}",
        "http://127.0.0.1:8080/unsubscribe?token={token}",
        "http://localhost:8080/unsubscribe?c={customer}",
        "http://[::1]:8080/unsubscribe?c={customer}",
    ],
)
def test_an_unsubscribe_url_is_https_or_plain_http_on_this_machine(
    monkeypatch: pytest.MonkeyPatch, url: str
) -> None:
    """https anywhere; http only to loopback, where a test or a local trial runs the daemon."""
    _customer_email(monkeypatch, url)
    email = load_settings().customers.email
    assert email is not None
    assert email.unsubscribe_url == url


def test_the_longest_policy_windows_build_their_policies(monkeypatch: pytest.MonkeyPatch) -> None:
    """The largest accepted ages and watch windows make policies a tick can run: 1e300 s
    passed `config check` and the daemon stopped at start with an OverflowError."""
    from jarvis.app import build_policies

    monkeypatch.setenv("JARVIS_SCALING", '{"enabled": true, "metric_max_age_seconds": 86400}')
    monkeypatch.setenv("JARVIS_SCALING__RULES", '[{"target_cpu_utilization": 50}]')
    monkeypatch.setenv(
        "JARVIS_ROLLBACK",
        '{"enabled": true, "watch_seconds": 86400, "ready_timeout_seconds": 86400}',
    )
    names = {policy.name for policy in build_policies(load_settings())}
    assert {"scaling", "rollback"} <= names


def test_a_route_with_an_unpriced_model_is_a_config_error(monkeypatch: pytest.MonkeyPatch) -> None:
    """The cost policy cannot price a route's model without [cost.prices]: refused naming the
    route and the model, where `config check` had passed it and `run` stopped with a traceback."""
    price = {"input_per_1k": 0.001, "output_per_1k": 0.002}
    monkeypatch.setenv("JARVIS_COST", json.dumps({"enabled": True, "prices": {"a": price}}))
    routes = {"chat": {"weights": {"a": 0.5, "b": 0.5}, "allowed": ["c"]}}
    monkeypatch.setenv("JARVIS_ROUTING__ROUTES", json.dumps(routes))
    with pytest.raises(ConfigError, match=r"routing\.routes\.chat: .*\['b', 'c'\]"):
        load_settings()
    monkeypatch.setenv("JARVIS_COST__ENABLED", "false")
    assert load_settings().routing.routes["chat"].models == ("a", "b", "c")


@pytest.mark.parametrize("key", ["admin_token", "read_token"])
def test_a_short_token_is_refused_naming_its_key_not_its_value(
    monkeypatch: pytest.MonkeyPatch, key: str
) -> None:
    """A token shorter than 16 characters is guessable: refused at load, naming the key and
    never quoting the token, in the validator's words (no "Value error, " before them)."""
    monkeypatch.setenv(f"JARVIS_{key.upper()}", "s3cret-short")
    with pytest.raises(ConfigError, match=rf"\n  {key}: must be at least 16 characters") as raised:
        load_settings()
    assert "s3cret-short" not in str(raised.value)
    monkeypatch.setenv(f"JARVIS_{key.upper()}", "s3cret-but-long-enough")
    assert load_settings() is not None


def test_a_read_token_equal_to_the_admin_token_is_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The read token must differ from the admin token: equal, every reader could change
    things. The error names both keys and quotes neither."""
    token = "one-token-for-everyone-0123"
    monkeypatch.setenv("JARVIS_ADMIN_TOKEN", token)
    monkeypatch.setenv("JARVIS_READ_TOKEN", token)
    with pytest.raises(ConfigError, match=r"read_token: .*differ from admin_token") as raised:
        load_settings()
    assert token not in str(raised.value)
    result = CliRunner().invoke(app, ["config", "check"])
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    assert token not in result.output


_RULE = '[{"target_cpu_utilization": 50, "max_replicas": MAX, "schedule": WINDOWS}]'
_WINDOW = '[{"start": "08:00", "end": "09:00", "max_replicas": N}]'


@pytest.mark.parametrize(
    ("variable", "value", "key"),
    [
        ("JARVIS_BOUNDS__MAX_REPLICAS", "N", "bounds.max_replicas"),
        ("JARVIS_SCALING__SCALE_UP_MAX_REPLICAS", "N", "scaling.scale_up_max_replicas"),
        ("JARVIS_SCALING__SCALE_DOWN_MAX_REPLICAS", "N", "scaling.scale_down_max_replicas"),
        ("JARVIS_SCALING__SCALE_UP_MAX_PERCENT", "N", "scaling.scale_up_max_percent"),
        (
            "JARVIS_SCALING__SCALE_UP_POLICIES",
            '[{"type": "pods", "value": N}]',
            "scaling.scale_up_policies.0.value",
        ),
        (
            "JARVIS_SCALING__RULES",
            _RULE.replace("MAX", "N").replace("WINDOWS", "[]"),
            "scaling.rules.0.max_replicas",
        ),
        (
            "JARVIS_SCALING__RULES",
            _RULE.replace("MAX", "5").replace("WINDOWS", _WINDOW),
            "scaling.rules.0.schedule.0.max_replicas",
        ),
    ],
)
def test_a_replica_count_no_provider_takes_is_refused_naming_its_key(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, key: str
) -> None:
    """Replica counts and scaling steps are at most 2^31 - 1, what Kubernetes' int32 replicas,
    ECS's desiredCount and Cloud Run's instance counts take: 2^70 was accepted, and a huge
    percentage made every scale-up an OverflowError; the largest builds the policies."""
    from jarvis.app import build_guard, build_policies

    monkeypatch.setenv("JARVIS_SCALING__ENABLED", "true")
    monkeypatch.setenv("JARVIS_SCALING__RULES", '[{"target_cpu_utilization": 50}]')
    monkeypatch.setenv(variable, value.replace("N", str(2**31 - 1)))
    settings = load_settings()
    assert "scaling" in {policy.name for policy in build_policies(settings)}
    build_guard(settings)
    monkeypatch.setenv(variable, value.replace("N", str(2**70)))
    with pytest.raises(ConfigError, match=rf"\n  {re.escape(key)}: .*less than or equal"):
        load_settings()


@pytest.mark.parametrize("zone", ["America", "Europe", "zone.tab"])
@pytest.mark.parametrize(
    ("variable", "value", "key"),
    [
        ("JARVIS_REPORT__TIMEZONE", "ZONE", "report.timezone"),
        (
            "JARVIS_SCALING__RULES",
            '[{"target_cpu_utilization": 50, "timezone": "ZONE"}]',
            "scaling.rules.0.timezone",
        ),
        (
            "JARVIS_BUDGETS",
            '[{"name": "b", "max": 1, "schedule": {"timezone": "ZONE", '
            '"hours": [{"start": "08:00", "end": "09:00"}]}}]',
            "budgets.0.schedule.timezone",
        ),
    ],
)
def test_a_time_zone_that_names_a_directory_is_refused_naming_its_key(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, key: str, zone: str
) -> None:
    """ "America" is a directory of the zone database, not a zone: `config check` and `run`
    ended in an IsADirectoryError traceback; it is an unknown time zone naming the key."""
    monkeypatch.setenv(variable, value.replace("ZONE", zone))
    with pytest.raises(ConfigError, match=rf"\n  {re.escape(key)}: .*unknown time zone"):
        load_settings()
    result = CliRunner().invoke(app, ["config", "check"])
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output and key in result.output


@pytest.mark.parametrize(
    ("variable", "value", "key"),
    [
        ("JARVIS_ADMIN_TOKEN", "0123456789abcdef0123\n", "admin_token"),
        ("JARVIS_READ_TOKEN", " 0123456789abcdef0123", "read_token"),
        ("JARVIS_ADMIN_TOKEN", "0123456789\x1babcdef0123", "admin_token"),
        ("JARVIS_DATABASE_URL", "postgresql+asyncpg://jarvis@db:5432/jarvis\n", "database_url"),
        ("JARVIS_DATABASE_URL", "sqlite+aiosqlite:///jarvis.db\r\n", "database_url"),
        ("JARVIS_REDIS_URL", "redis://cache:6379/0\n", "redis_url"),
    ],
)
def test_a_secret_or_url_with_a_line_break_is_refused_naming_its_key(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, key: str
) -> None:
    """A value read from a file keeps its trailing newline (a Kubernetes Secret made with
    --from-file): the token then never matched a request, the URL named a database
    "jarvis\\n". Refused naming the key, never quoting the value."""
    monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigError, match=rf"\n  {key}: .*(whitespace|control)") as raised:
        load_settings()
    assert value.strip() not in str(raised.value)


def test_a_config_file_larger_than_any_configuration_is_refused_unread(tmp_path: Path) -> None:
    """A 20 GB file given as --config (a disk image, a log) was read whole into memory, then
    parsed: `config check` grew past 13 GB. More than a mebibyte is refused naming the file
    (64 MiB here, so that the old code failed this test without exhausting memory)."""
    config = tmp_path / "image.toml"
    with config.open("wb") as sparse:
        sparse.truncate(64 * 2**20)
    with pytest.raises(ConfigError, match=r"image\.toml is larger than 1 MiB"):
        load_settings(str(config))
    config.write_text("# " + "x" * (2**20 - 3) + "\n")  # exactly 1 MiB
    assert load_settings(str(config)) is not None


def test_a_symlink_loop_given_as_the_config_file_is_named_as_one(tmp_path: Path) -> None:
    """A link that leads back to itself exists: it is unreadable, not "not found"."""
    (tmp_path / "a.toml").symlink_to(tmp_path / "b.toml")
    (tmp_path / "b.toml").symlink_to(tmp_path / "a.toml")
    with pytest.raises(ConfigError, match=r"cannot read config file .*a\.toml: .*symbolic links"):
        load_settings(str(tmp_path / "a.toml"))


def test_a_config_path_that_is_no_regular_file_is_named_as_such(tmp_path: Path) -> None:
    """A FIFO (or a device) exists: it is not a regular file, rather than "not found", and
    nothing waits for a writer."""
    import os

    os.mkfifo(tmp_path / "pipe")
    with pytest.raises(ConfigError, match=r"pipe is not a regular file"):
        load_settings(str(tmp_path / "pipe"))
    with pytest.raises(ConfigError, match=r"/dev/null is not a regular file"):
        load_settings("/dev/null")


@pytest.mark.parametrize("name", ["a\x00b", "a\x1b[2Jb", "a/b", "", "caf\u00e9\u202e"])
@pytest.mark.parametrize("kind", ["postgres", "redis"])
def test_a_probe_name_that_is_no_plain_name_is_refused_naming_its_section(
    monkeypatch: pytest.MonkeyPatch, kind: str, name: str
) -> None:
    """A dependency probe's name becomes its resource (``probe://redis/NAME``): a NUL was
    stored as U+FFFD, so the record named another resource than the one observed, and a
    slash made a path of it. Names are an endpoint's: letters, digits, ``.``, ``_``, ``-``."""
    scheme = "postgresql" if kind == "postgres" else "redis"
    monkeypatch.setenv(f"JARVIS_PROBES__{kind.upper()}", json.dumps({name: f"{scheme}://h/0"}))
    with pytest.raises(ConfigError, match=rf"\n  probes\.{kind}\.") as raised:
        load_settings()
    assert "pattern" in str(raised.value)
    result = CliRunner().invoke(app, ["config", "check"])
    assert result.exit_code == 2, result.output
    assert "\x00" not in result.output and "\x1b" not in result.output


@pytest.mark.parametrize(
    ("section", "update", "policy"),
    [
        ("scaling", {"tolerance": 1.5}, "scaling"),
        ("rollback", {"consecutive_checks": 0}, "rollback"),
        ("failover", {"fail_ticks": 0}, "failover"),
    ],
)
def test_a_policy_that_refuses_its_settings_is_a_config_error_naming_it(
    monkeypatch: pytest.MonkeyPatch, section: str, update: dict[str, object], policy: str
) -> None:
    """Whatever a policy refuses when it is built (a check config does not repeat) is a
    ConfigError naming the policy, which `config check`, `run` and `db prune` print as one
    line, not a ValueError traceback. No validated config reaches one today: the values
    are set past validation, as a future section drifting from its policy would."""
    from jarvis.app import build_policies

    monkeypatch.setenv(
        "JARVIS_SCALING", '{"enabled": true, "rules": [{"target_cpu_utilization": 50}]}'
    )
    monkeypatch.setenv("JARVIS_ROLLBACK__ENABLED", "true")
    monkeypatch.setenv(
        "JARVIS_PROBES__ENDPOINTS",
        '[{"name": "a", "url": "https://a.example/"}, {"name": "b", "url": "https://b.example/"}]',
    )
    monkeypatch.setenv(
        "JARVIS_FAILOVER__GROUPS",
        json.dumps(
            [
                {
                    "zone_id": "Z1",
                    "name": "api.example.com",
                    "targets": [
                        {"set_identifier": name, "weight": 1, "endpoints": [name]}
                        for name in ("a", "b")
                    ],
                }
            ]
        ),
    )
    settings = load_settings()
    assert {"scaling", "rollback", "failover"} <= {p.name for p in build_policies(settings)}
    broken = settings.model_copy(
        update={section: getattr(settings, section).model_copy(update=update)}
    )
    with pytest.raises(ConfigError, match=rf"^invalid configuration: the {policy} policy refuses"):
        build_policies(broken)


@pytest.mark.parametrize("replica", ["a\\u0000b", "pod-1\\n", "\\u001b[2Jpod", " pod"])
def test_a_replica_id_with_a_control_character_is_refused_naming_it(
    tmp_path: Path, replica: str
) -> None:
    """PostgreSQL refuses a NUL in text: a replica named with one never took the lease, every
    round a warning, and never acted; line breaks and escapes forge the log and status lines.
    Refused at load, naming ``lease.replica_id``."""
    config = tmp_path / "lease.toml"
    config.write_text(f'[lease]\nreplica_id = "{replica}"\n')
    with pytest.raises(ConfigError, match=r"\n  lease\.replica_id: .*control characters"):
        load_settings(str(config))


_BCC = "\r\nBcc: everyone@example.com"


@pytest.mark.parametrize(
    ("variable", "fields", "key"),
    [
        ("JARVIS_NOTIFY__EMAIL", {"sender": "jarvis@example.com" + _BCC}, "notify.email.sender"),
        (
            "JARVIS_NOTIFY__EMAIL",
            {"recipients": ["sre@example.com" + _BCC]},
            "notify.email.recipients.0",
        ),
        ("JARVIS_NOTIFY__EMAIL", {"host": "smtp.internal\n"}, "notify.email.host"),
        (
            "JARVIS_CUSTOMERS__EMAIL",
            {"sender": "hello@example.com" + _BCC},
            "customers.email.sender",
        ),
        ("JARVIS_CUSTOMERS__EMAIL", {"product": "Jarvis" + _BCC}, "customers.email.product"),
    ],
)
def test_a_mail_header_value_with_a_line_break_is_refused_naming_its_key(
    monkeypatch: pytest.MonkeyPatch, variable: str, fields: dict[str, object], key: str
) -> None:
    """An address or name with a line break passed `config check`; Python's email refuses
    such a header, so every alert (or customer email) failed when it was sent, found only
    once something fired. Refused at load, naming the key."""
    base: dict[str, object] = {"host": "smtp.internal", "sender": "jarvis@example.com"}
    if variable == "JARVIS_NOTIFY__EMAIL":
        base["recipients"] = ["sre@example.com"]
    monkeypatch.setenv(variable, json.dumps({**base, **fields}))
    with pytest.raises(ConfigError, match=rf"\n  {re.escape(key)}: .*control characters"):
        load_settings()


def test_a_config_path_with_a_line_break_is_named_with_it_shown(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """``JARVIS_CONFIG`` read from a file kept its newline: the error said "config file not
    found: jarvis.toml" over two lines while jarvis.toml was there. The path is shown with
    its line break escaped, and what is wrong with it said."""
    (tmp_path / "jarvis.toml").write_text("")
    monkeypatch.setenv("JARVIS_CONFIG", "jarvis.toml\n")
    with pytest.raises(ConfigError) as raised:
        load_settings()
    message = str(raised.value)
    assert "\n" not in message
    assert "'jarvis.toml\\n'" in message and "line break" in message


def test_a_config_file_nested_too_deeply_is_a_config_error(tmp_path: Path) -> None:
    """tomllib recurses per nested array or inline table: 100,000 of them in a 200 KB file
    ended every command in a RecursionError traceback."""
    config = tmp_path / "deep.toml"
    config.write_text("a = " + "[" * 100_000 + "]" * 100_000 + "\n")
    with pytest.raises(ConfigError, match=r"deep\.toml is not valid TOML: .*nested too deeply"):
        load_settings(str(config))


@pytest.mark.parametrize(
    "value", ["[" * 30_000 + "]" * 30_000, '{"a":' * 10_000 + "1" + "}" * 10_000]
)
def test_a_variable_nested_too_deeply_is_a_config_error_naming_it(
    monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    """JSON in a JARVIS_* variable nested tens of thousands deep was a RecursionError
    traceback; it is a configuration error naming the variable."""
    monkeypatch.setenv("JARVIS_LOOP__INTERVAL", "5")
    monkeypatch.setenv("JARVIS_ALLOWLIST", value)
    with pytest.raises(ConfigError, match=r"JARVIS_ALLOWLIST nests .*too deeply") as raised:
        load_settings()
    assert "JARVIS_LOOP__INTERVAL" not in str(raised.value)


@pytest.mark.parametrize(
    ("variable", "value", "key"),
    [
        ("JARVIS_ADMIN_TOKEN", "\udcff0123456789abcdef", "admin_token"),
        ("JARVIS_DATABASE_URL", "sqlite+aiosqlite:///\udcff.db", "database_url"),
    ],
)
def test_a_variable_that_is_not_utf8_is_refused_naming_its_key(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, key: str
) -> None:
    """A byte that is not UTF-8 in the environment arrives as a lone surrogate: the admin
    token ended `run` in a UnicodeEncodeError traceback when the server started, the
    database URL `config check` in a PydanticSerializationError. Refused naming the key."""
    monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigError, match=rf"\n  {key}: .*UTF-8"):
        load_settings()
    result = CliRunner().invoke(app, ["config", "check"])
    assert result.exit_code == 2, result.output


def test_a_config_file_with_a_byte_order_mark_is_named_as_such(tmp_path: Path) -> None:
    """An editor that saves "UTF-8 with BOM" made the file "not valid TOML: Invalid statement
    (at line 1, column 1)", on a line that looks right; the error says what is there."""
    config = tmp_path / "bom.toml"
    config.write_bytes(b"\xef\xbb\xbf[loop]\ninterval = 5\n")
    with pytest.raises(ConfigError, match=r"bom\.toml starts with a byte order mark"):
        load_settings(str(config))
