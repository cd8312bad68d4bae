"""Config loading: examples, env and file secrets, defaults, models, and error messages with paths."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pydantic
import pytest

from mirror.auth.credentials import Credential
from mirror.jobs.config import Config, format_path, load_config, parse_config, parse_size
from mirror.jobs.mapping import SourceKind
from mirror.jobs.schedule import Cron, Interval
from mirror.transport.client import HostOptions
from mirror.types.errors import ConfigError, InputError
from mirror.types.manifest import Platform
from mirror.types.reference import ImageRef

CONFIG_DIR = Path(__file__).resolve().parent.parent / "config"

BASE = """\
version: 1
jobs:
  - name: apps
    source: h.io/apps/*
    destinations: [d.io/mirror]
"""


def parse(text: str, **env: str) -> Config:
    return parse_config(textwrap.dedent(text), env=env, base_dir="/nonexistent-base")


def error_of(text: str, *, base_dir: str | Path = "/nonexistent-base", **env: str) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        parse_config(textwrap.dedent(text), env=env, base_dir=base_dir)
    return info.value


# -- the examples ---------------------------------------------------------------------------------


def test_minimal_example_loads() -> None:
    config = load_config(CONFIG_DIR / "minimal.yaml", env={"DEST_PASSWORD": "s3cret"})
    assert config.version == 1
    (job,) = config.jobs
    assert job.name == "apps"
    assert job.source.kind is SourceKind.PREFIX
    assert (job.source.host, job.source.path) == ("127.0.0.1:5001", "apps")
    assert job.targets("apps/web") == (ImageRef("127.0.0.1:5002", "mirror/web"),)
    assert job.tag_filter.matches("v1") and not job.tag_filter.matches("1.0")
    assert config.host_options()["127.0.0.1:5001"] == HostOptions(plain_http=True)
    assert config.credentials() == {
        "127.0.0.1:5002": Credential(username="u", password="s3cret", provider="config")
    }


def test_minimal_example_names_the_missing_variable() -> None:
    with pytest.raises(ConfigError) as info:
        load_config(CONFIG_DIR / "minimal.yaml", env={})
    assert info.value.path == 'registries["127.0.0.1:5002"].password'
    assert "environment variable DEST_PASSWORD is not set" in str(info.value)


@pytest.fixture
def example_env(tmp_path: Path) -> dict[str, str]:
    (tmp_path / "hub-token").write_text("hub-token-value\n")
    (tmp_path / "key.json").write_text('{"type": "service_account"}\n')
    (tmp_path / "ca.pem").write_text("-----BEGIN CERTIFICATE-----\n")
    return {
        "GCP_PROJECT": "my-project",
        "S3NS_LOCATION": "u-france-east1",
        "S3NS_PROJECT": "my-s3ns-project",
        "HUB_USERNAME": "me",
        "HUB_TOKEN_FILE": str(tmp_path / "hub-token"),
        "AR_KEY_FILE": str(tmp_path / "key.json"),
        "S3NS_KEY_FILE": str(tmp_path / "key.json"),
        "INTERNAL_CA": str(tmp_path / "ca.pem"),
        "EVENTS_TOKEN": "an-events-token-0123456789",
    }


def test_full_example_loads(example_env: dict[str, str]) -> None:
    config = load_config(CONFIG_DIR / "example.yaml", env=example_env)
    assert [j.name for j in config.jobs] == ["nginx", "redis-7", "internal-team", "internal-base", "base-dr"]
    dr = config.s3_settings("example-dr-backups/registry/base")
    assert dr == {"region": "eu-west-3", "profile": "dr-writer"}
    assert config.job("base-dr").schedule.spec == Cron("0 3 * * *", 0.0, "Europe/Paris")
    assert config.metrics is not None and config.metrics.address == "127.0.0.1:9090"
    assert config.log.format == "json"
    assert config.events is not None
    assert config.events.token.get_secret_value() == "an-events-token-0123456789"
    hub = config.registry("registry-1.docker.io")
    assert hub.credential() == Credential(username="me", password="hub-token-value", provider="config")
    assert config.host_options()["registry-1.docker.io"].requests_per_second == 5
    assert config.registry("europe-west1-docker.pkg.dev").max_blob_size == 5 * 2**40
    assert "u-france-east1-docker.s3nsregistry.fr" in config.registries
    assert config.registry("registry.internal.example.com:5000").ca_file == example_env["INTERNAL_CA"]

    nginx = config.job("nginx")
    assert [str(t) for t in nginx.targets()] == [
        "europe-west1-docker.pkg.dev/my-project/mirror/nginx",
        "u-france-east1-docker.s3nsregistry.fr/my-s3ns-project/mirror/nginx",
    ]
    assert nginx.tags.exclude == ()  # the job's tags replace the default tags
    assert nginx.schedule.spec == Interval(6 * 3600.0, 0.1)
    assert nginx.platforms == (Platform("linux", "amd64"), Platform("linux", "arm64"))
    assert nginx.referrers is True

    redis = config.job("redis-7")
    assert redis.source.kind is SourceKind.IMAGE and redis.source.tag == "7.4"
    assert redis.tags.exclude == ()  # default tags are not applied to a single image
    assert redis.schedule.spec == Interval(900.0, 0.1)

    team = config.job("internal-team")
    assert team.schedule.spec == Cron("*/30 6-20 * * 1-5", 0.0, "Europe/Paris")
    assert team.overwrite is True
    assert str(team.targets("team/x/cli")[0]) == "europe-west1-docker.pkg.dev/my-project/internal/x/cli"

    base = config.job("internal-base")
    assert base.platforms == ()
    assert base.tags.exclude == ("^tmp-",)
    assert base.schedule.spec == Cron("0 2 * * *", 0.05)


def test_readme_mentions_every_field() -> None:
    readme = (CONFIG_DIR / "README.md").read_text()
    from mirror.jobs.config import Job, LogConfig, MetricsConfig, RegistryConfig, ScheduleConfig, TagsConfig

    for model in (Config, Job, RegistryConfig, TagsConfig, ScheduleConfig, MetricsConfig, LogConfig):
        for name in model.model_fields:
            assert f"`{name}" in readme, f"{model.__name__}.{name} is not described in config/README.md"


# -- environment variables ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "env", "expected"),
    [
        ("${USER_NAME}", {"USER_NAME": "alice"}, "alice"),
        ("pre-${USER_NAME}-post", {"USER_NAME": "alice"}, "pre-alice-post"),
        ("${USER_NAME:-bob}", {}, "bob"),
        ("${USER_NAME:-}", {}, ""),
        ("${USER_NAME:-bob}", {"USER_NAME": "alice"}, "alice"),
        ("$${USER_NAME}", {}, "${USER_NAME}"),
        ("$USER_NAME", {}, "$USER_NAME"),
        ("a$b", {}, "a$b"),
    ],
)
def test_env_expansion(value: str, env: dict[str, str], expected: str) -> None:
    config = parse(BASE + f"    tags: {{include: ['{value}']}}\n", **env)
    assert config.jobs[0].tags.include == (expected,)


def test_env_expansion_in_keys_and_nested_values() -> None:
    config = parse(
        """\
        version: 1
        registries:
          "${REG}": {plain_http: "${PLAIN}"}
        jobs:
          - name: a
            source: "${REG}/apps/*"
            destinations: ["d.io/${PROJECT}/m"]
        """,
        REG="127.0.0.1:5000",
        PLAIN="true",
        PROJECT="proj",
    )
    assert config.registries["127.0.0.1:5000"].plain_http is True
    assert str(config.jobs[0].destinations[0]) == "d.io/proj/m"


@pytest.mark.parametrize(
    ("text", "path", "message"),
    [
        (BASE + "    overwrite: '${MISSING}'\n", "jobs[0].overwrite", "variable MISSING is not set"),
        (BASE + "    overwrite: '${'\n", "jobs[0].overwrite", "write $${ for a literal"),
        (BASE + "    overwrite: '${1X}'\n", "jobs[0].overwrite", "must start a variable reference"),
        (BASE + "    tags: {include: [a, '${NOPE}']}\n", "jobs[0].tags.include[1]", "NOPE"),
        (BASE + "registries:\n  '${HOSTVAR}': {}\n", 'registries["${HOSTVAR}"]', "HOSTVAR"),
    ],
)
def test_env_errors(text: str, path: str, message: str) -> None:
    error = error_of(text)
    assert error.path == path
    assert message in error.message


# -- secret files ---------------------------------------------------------------------------------


def registry_text(entry: str) -> str:
    return BASE + f"registries:\n  h.io: {entry}\n"


@pytest.mark.parametrize(
    ("content", "expected"), [("pw\n", "pw"), ("pw\r\n", "pw"), ("pw", "pw"), ("p w \n\n", "p w ")]
)
def test_password_file_is_read_relative_to_the_config(tmp_path: Path, content: str, expected: str) -> None:
    (tmp_path / "secrets").mkdir()
    (tmp_path / "secrets" / "pw").write_text(content)
    text = registry_text("{username: u, password_file: secrets/pw}")
    config = parse_config(text, env={}, base_dir=tmp_path)
    password = config.registries["h.io"].password
    assert password is not None and password.get_secret_value() == expected


def test_token_and_identity_token_files(tmp_path: Path) -> None:
    (tmp_path / "t").write_text("bearer\n")
    config = parse_config(registry_text("{token_file: t}"), env={}, base_dir=tmp_path)
    assert config.registries["h.io"].credential() == Credential(registry_token="bearer", provider="config")
    config = parse_config(registry_text("{username: u, identity_token_file: t}"), env={}, base_dir=tmp_path)
    assert config.registries["h.io"].credential() == Credential(
        username="u", identity_token="bearer", provider="config"
    )


def test_load_config_reads_files_next_to_the_config(tmp_path: Path) -> None:
    (tmp_path / "pw").write_text("secret\n")
    (tmp_path / "mirror.yaml").write_text(registry_text("{username: u, password_file: pw}"))
    config = load_config(tmp_path / "mirror.yaml", env={})
    assert config.credentials()["h.io"].password == "secret"


@pytest.mark.parametrize(
    ("entry", "setup", "message"),
    [
        ("{username: u, password_file: missing}", None, "file 'missing' not found"),
        ("{username: u, password_file: empty}", "", "is empty"),
        ("{username: u, password_file: dir}", "DIR", "is a directory"),
        ("{username: u, password_file: big}", "x" * 70000, "larger than 64 KiB"),
        ("{username: u, password_file: 5}", None, "expected a file path"),
        ("{username: u, password: p, password_file: pw}", "pw", "set password or password_file, not both"),
        ("{username: u, password_file: ~nosuchuser/pw}", None, "cannot expand '~'"),
        ('{username: u, password_file: "a\\0b"}', None, "NUL character"),
    ],
)
def test_secret_file_errors(tmp_path: Path, entry: str, setup: str | None, message: str) -> None:
    name = entry.rsplit("password_file: ", 1)[-1].rstrip("}")
    if setup == "DIR":
        (tmp_path / name).mkdir()
    elif setup is not None:
        (tmp_path / name).write_text(setup)
    error = error_of(registry_text(entry), base_dir=tmp_path)
    assert error.path == 'registries["h.io"].password_file'
    assert message in error.message


def test_tls_files_must_exist(tmp_path: Path) -> None:
    (tmp_path / "ca.pem").write_text("pem")
    config = parse_config(registry_text("{ca_file: ca.pem}"), env={}, base_dir=tmp_path)
    assert config.registries["h.io"].ca_file == str(tmp_path / "ca.pem")
    error = error_of(registry_text("{client_cert: cert.pem}"), base_dir=tmp_path)
    assert error.path == 'registries["h.io"].client_cert'
    assert "file 'cert.pem' not found" in error.message
    error = error_of(registry_text("{ca_file: ~nosuchuser/ca.pem}"), base_dir=tmp_path)
    assert error.path == 'registries["h.io"].ca_file'
    assert "cannot expand '~'" in error.message


# -- defaults -------------------------------------------------------------------------------------


def test_defaults_merge_job_fields_win() -> None:
    config = parse(
        """\
        version: 1
        defaults:
          overwrite: true
          referrers: true
          schedule: {interval: 5m, jitter: 0.5}
          tags: {exclude: ["-rc"], latest: 3}
        jobs:
          - {name: a, source: h.io/a, destinations: [d.io/m]}
          - {name: b, source: h.io/b, destinations: [d.io/m], overwrite: false, schedule: {cron: "@daily"}}
          - {name: c, source: h.io/c, destinations: [d.io/m], tags: {include: ["^v"]}}
          - {name: d, source: "h.io/d:v1", destinations: [d.io/m]}
        """
    )
    a, b, c, d = config.jobs
    assert (a.overwrite, a.referrers, a.schedule.spec) == (True, True, Interval(300.0, 0.5))
    assert a.tags.exclude == ("-rc",) and a.tags.latest == 3
    assert (b.overwrite, b.referrers, b.schedule.spec) == (False, True, Cron("@daily", 0.0))
    assert c.tags.include == ("^v",) and c.tags.exclude == () and c.tags.latest is None
    assert d.tags.exclude == ()  # an image source gets no default tags
    assert config.defaults.overwrite is True


def test_builtin_defaults() -> None:
    config = parse(BASE)
    job = config.jobs[0]
    assert job.schedule.spec == Interval(3600.0, 0.1)
    assert (job.overwrite, job.referrers, job.create_repositories, job.platforms) == (False, False, False, ())
    assert job.tag_filter.keeps_everything
    assert (config.concurrency, config.metrics) == (8, None)
    assert (config.log.format, config.log.level) == ("text", "info")


# -- registries -----------------------------------------------------------------------------------


def test_registry_options_and_docker_hub_aliases() -> None:
    config = parse(
        BASE
        + """\
registries:
  index.docker.io: {username: u, password: p, max_concurrency: 3}
  "127.0.0.1:5000":
  reg.example.com: {plain_http: yes, requests_per_second: 2.5, max_blob_size: 10GB}
"""
    )
    assert set(config.registries) == {"docker.io", "127.0.0.1:5000", "reg.example.com"}
    options = config.host_options()
    # Docker Hub's profile adds its pull limit's code as final (not retried).
    hub = HostOptions(max_concurrency=3, final_codes=frozenset({"TOOMANYREQUESTS"}))
    assert options["docker.io"] == options["registry-1.docker.io"] == hub
    assert options["reg.example.com"] == HostOptions(plain_http=True, requests_per_second=2.5)
    assert config.registry("reg.example.com").max_blob_size == 10 * 10**9
    assert config.registry("unknown.example.com").host_options() == HostOptions()
    assert config.registry("unknown.example.com").credential() is None
    assert set(config.credentials()) == {"docker.io", "registry-1.docker.io"}


@pytest.mark.parametrize(
    ("value", "size"),
    [
        (1, 1),
        ("1", 1),
        ("512MB", 512 * 10**6),
        ("512MiB", 512 * 2**20),
        ("5TB", 5 * 10**12),
        ("5TiB", 5 * 2**40),
        ("5tib", 5 * 2**40),
        ("1.5 GiB", 3 * 2**29),
        ("10k", 10_000),
        ("100B", 100),
    ],
)
def test_parse_size(value: object, size: int) -> None:
    assert parse_size(value) == size


@pytest.mark.parametrize("value", [0, -1, "", "5XB", "TB", "1.5.2GB", True, None, 1.5, "5 T B"])
def test_parse_size_rejects(value: object) -> None:
    with pytest.raises(ConfigError, match="size"):
        parse_size(value)


def test_secrets_stay_out_of_repr_and_errors() -> None:
    config = parse(BASE + "registries:\n  h.io: {username: u, password: hunter2}\n")
    assert "hunter2" not in repr(config)
    assert "hunter2" not in str(config.credentials())
    error = error_of(BASE + "registries:\n  h.io: {username: u, password: 987654321}\n")
    assert "987654321" not in str(error)
    assert error.path == 'registries["h.io"].password'


def test_config_is_frozen() -> None:
    config = parse(BASE)
    with pytest.raises(pydantic.ValidationError):
        config.concurrency = 3
    with pytest.raises(pydantic.ValidationError):
        config.jobs[0].name = "x"
    assert isinstance(config.jobs, tuple)


# -- errors: one per problem, with the field path -----------------------------------------------------

J = "version: 1\njobs:\n  - "
ERRORS = [
    # (text, path, words in the message)
    ("", "", "the config is empty"),
    ("- a\n", "", "must be a mapping"),
    ("jobs: []\n", "version", "add 'version: 1'"),
    ("version: 2\njobs: []\n", "version", "unsupported config version 2"),
    ("version: '1'\n", "version", "unsupported config version '1'"),
    ("version: true\n", "version", "unsupported config version True"),
    ("version: 1\n", "jobs", "add a jobs: list"),
    ("version: 1\njobs: []\n", "jobs", "is empty"),
    ("version: 1\njobs: {a: 1}\n", "jobs", "expected a list, got a mapping"),
    ("version: 1\njobs: [\n", "", "invalid YAML at line 3"),
    ("version: 1\nversion: 1\n", "", "key 'version' appears twice"),
    (BASE + "    name: again\n", "", "key 'name' appears twice"),
    (BASE + "    overwrite: 2024-01-01\n", "jobs[0].overwrite", "date; quote it"),
    (BASE + "on: 1\n", "", "key True is not text"),
    (BASE + "1: x\n", "", "key 1 is not text"),
    (BASE + "    tag: {include: [a]}\n", "jobs[0].tag", "unknown key 'tag'; did you mean 'tags'?"),
    (BASE + "job: []\n", "job", "did you mean 'jobs'?"),
    (BASE + "zzz: 1\n", "zzz", "valid keys here: concurrency, defaults, events, jobs, log"),
    (BASE + "    tags: {includes: [a]}\n", "jobs[0].tags.includes", "did you mean 'include'?"),
    (BASE + "registries:\n  h.io: {pasword: x}\n", 'registries["h.io"].pasword', "did you mean 'password'?"),
    (BASE + "registries:\n  h.io: {passwordfile: x}\n", 'registries["h.io"].passwordfile', "'password_file'"),
    (BASE + "defaults: {source: h.io/x}\n", "defaults.source", "belongs in each job"),
    (BASE + "defaults: {referers: true}\n", "defaults.referers", "did you mean 'referrers'?"),
    (BASE + "defaults: {overwrite: maybe}\n", "defaults.overwrite", "expected true or false, got 'maybe'"),
    (BASE + "    tags: {include: ['^v', 'a(']}\n", "jobs[0].tags.include[1]", "not a valid regular"),
    (BASE + "    tags: {exclude: [5]}\n", "jobs[0].tags.exclude[0]", "expected text, got 5; quote the value"),
    (BASE + "    tags: {semver: '>>1'}\n", "jobs[0].tags.semver", "not a semver range"),
    (BASE + "    tags: {latest: 0}\n", "jobs[0].tags.latest", "must be >= 1, got 0"),
    (BASE + "    schedule: {cron: '61 * * * *'}\n", "jobs[0].schedule.cron", "out of range"),
    (BASE + "    schedule: {cron: '* * *'}\n", "jobs[0].schedule.cron", "3 fields, not 5"),
    (BASE + "    schedule: {interval: 5 minutes}\n", "jobs[0].schedule.interval", "not a duration"),
    (BASE + "    schedule: {interval: 0s}\n", "jobs[0].schedule.interval", "out of range"),
    (BASE + "    schedule: {interval: 1m, cron: '@daily'}\n", "jobs[0].schedule", "not both"),
    (
        BASE + "    schedule: {cron: '@daily', timezone: Europe/Pariss}\n",
        "jobs[0].schedule.timezone",
        "did you mean 'Europe/Paris'",
    ),
    (BASE + "    schedule: {interval: 1h, timezone: UTC}\n", "jobs[0].schedule", "cron schedules only"),
    (BASE + "    schedule: {}\n", "jobs[0].schedule", "set interval (e.g. 15m) or cron"),
    (BASE + "    schedule: {interval: 1m, jitter: 1}\n", "jobs[0].schedule.jitter", "must be < 1"),
    (BASE + "    platforms: [linux/amd64, linux]\n", "jobs[0].platforms[1]", "os/arch[/variant]"),
    (BASE + "    platforms: linux/amd64\n", "jobs[0].platforms", "expected a list"),
    (BASE + "    overwrite: maybe\n", "jobs[0].overwrite", "expected true or false"),
    (BASE + "concurrency: many\n", "concurrency", "expected a whole number, got 'many'"),
    (BASE + "concurrency: 0\n", "concurrency", "must be >= 1"),
    (BASE + "log: {level: verbose}\n", "log.level", "expected 'debug', 'info', 'warning' or 'error'"),
    (BASE + "log: {format: xml}\n", "log.format", "expected 'text' or 'json'"),
    (BASE + "metrics: {address: localhost}\n", "metrics.address", "not HOST:PORT"),
    (BASE + "metrics: {}\n", "metrics.address", "missing; set the HOST:PORT"),
    (BASE + "registries: []\n", "registries", "expected a mapping"),
    (BASE + "registries:\n  'not a host': {}\n", 'registries["not a host"]', "not a valid host name"),
    (
        BASE + "registries:\n  docker.io: {}\n  index.docker.io: {}\n",
        'registries["index.docker.io"]',
        "configured more than once",
    ),
    (BASE + "registries:\n  h.io: 5\n", 'registries["h.io"]', "expected a mapping"),
    (BASE + "registries:\n  h.io: {username: u}\n", 'registries["h.io"]', "username 'u' has no password"),
    (BASE + "registries:\n  h.io: {password: p}\n", 'registries["h.io"]', "password without username"),
    (BASE + "registries:\n  h.io: {token: t, username: u}\n", 'registries["h.io"]', "cannot be combined"),
    (
        BASE + "registries:\n  h.io: {identity_token: t, username: u, password: p}\n",
        'registries["h.io"]',
        "not both",
    ),
    (BASE + "registries:\n  h.io: {client_key: k.pem}\n", 'registries["h.io"].client_key', "not found"),
    (BASE + "registries:\n  h.io: {max_concurrency: 0}\n", 'registries["h.io"].max_concurrency', ">= 1"),
    (
        BASE + "registries:\n  h.io: {requests_per_second: .nan}\n",
        'registries["h.io"].requests_per_second',
        "finite",
    ),
    (BASE + "registries:\n  h.io: {max_blob_size: 5XB}\n", 'registries["h.io"].max_blob_size', "not a size"),
    (J + "{source: h.io/a, destinations: [d.io/m]}\n", "jobs[0].name", "needs a unique name"),
    (
        J + "{name: 'a b', source: h.io/a, destinations: [d.io/m]}\n",
        "jobs[0].name",
        "job name 'a b' is not valid",
    ),
    (J + "{name: a, destinations: [d.io/m]}\n", "jobs[0].source", "every job needs a source"),
    (J + "{name: a, sorce: h.io/a, destinations: [d.io/m]}\n", "jobs[0].sorce", "did you mean 'source'?"),
    (J + "{name: a, source: h.io/a}\n", "jobs[0].destinations", "every job needs destinations"),
    (J + "{name: a, source: h.io/a, destinations: []}\n", "jobs[0].destinations", "is empty"),
    (J + "{name: a, source: h.io/Apps, destinations: [d.io/m]}\n", "jobs[0].source", "must be lowercase"),
    (
        J + "{name: a, source: docker.io/library/*, destinations: [d.io/m]}\n",
        "jobs[0].source",
        "Docker Hub does not list repositories",
    ),
    (J + "{name: a, source: 5, destinations: [d.io/m]}\n", "jobs[0].source", "expected a source (text)"),
    (
        J + "{name: a, source: h.io/a, destinations: [d.io/m, 'd.io/n:v1']}\n",
        "jobs[0].destinations[1]",
        "takes no tag or digest",
    ),
    (
        J + "{name: a, source: h.io/a, destinations: [d.io/m, d.io/m]}\n",
        "jobs[0].destinations[1]",
        "listed twice",
    ),
    (
        J + "{name: a, source: h.io/a/*, destinations: [h.io/a/b]}\n",
        "jobs[0].destinations[0]",
        "lies inside source h.io/a/*",
    ),
    (
        J + "{name: a, source: h.io/x/a, destinations: [h.io/x]}\n",
        "jobs[0].destinations[0]",
        "would copy onto itself",
    ),
    (  # one layout, spelled two ways
        J + "{name: a, source: 'oci:layout', destinations: ['oci:./sub/../layout/']}\n",
        "jobs[0].destinations[0]",
        "lies inside source oci:layout",
    ),
    (
        J + "{name: a, source: 's3://bkt/p', destinations: ['s3://bkt//p/']}\n",
        "jobs[0].destinations[0]",
        "lies inside source s3://bkt/p",
    ),
    (
        BASE + "  - {name: apps, source: h.io/b, destinations: [d.io/m]}\n",
        "jobs[1].name",
        "already used by jobs[0]",
    ),
    (
        J + "{name: a, source: 'h.io/a:v1', destinations: [d.io/m], tags: {latest: 1}}\n",
        "jobs[0].tags",
        "names one image",
    ),
    (J + "5\n", "jobs[0]", "expected a mapping"),
]


@pytest.mark.parametrize(("text", "path", "words"), ERRORS)
def test_errors_name_the_field(text: str, path: str, words: str) -> None:
    error = error_of(text)
    assert isinstance(error, InputError)
    assert error.path == path
    first_line = str(error).splitlines()[0]
    assert first_line.startswith(f"{path}: " if path else "")
    assert words in first_line, first_line


def test_several_problems_are_listed_one_per_line() -> None:
    error = error_of(
        """\
        version: 1
        jobs:
          - name: 'a b'
            source: 1
            destinations: []
            overwrite: maybe
        """
    )
    assert error.path == "jobs[0].name"
    lines = str(error).splitlines()
    assert [line.split(": ", 1)[0] for line in lines] == [
        "jobs[0].name",
        "jobs[0].source",
        "jobs[0].destinations",
        "jobs[0].overwrite",
    ]


def test_an_unknown_key_that_suggests_a_missing_one_is_reported_once() -> None:
    error = error_of("version: 1\njobs:\n  - {name: a, sorce: h.io/a, destinations: [d.io/m]}\n")
    assert str(error) == "jobs[0].sorce: unknown key 'sorce'; did you mean 'source'?"


def test_load_config_file_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "nope.yaml")
    (tmp_path / "bad.yaml").write_bytes(b"version: 1\n\xff\xfe")
    with pytest.raises(ConfigError, match="not UTF-8"):
        load_config(tmp_path / "bad.yaml")


def test_alias_bombs_are_bounded() -> None:
    levels = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    levels += [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]" for i in range(1, 8)]
    error = error_of("version: 1\n" + "\n".join(levels) + "\n")
    assert "more than 100000 values" in error.message


def test_self_referencing_yaml_is_refused() -> None:
    error = error_of("version: 1\njobs: &j [*j]\n")
    assert "nested more than" in error.message


@pytest.mark.parametrize(
    ("loc", "text"),
    [
        (("jobs", 0, "tags", "include", 1), "jobs[0].tags.include[1]"),
        (("registries", "127.0.0.1:5002", "password"), 'registries["127.0.0.1:5002"].password'),
        (("registries", 'we"ird'), 'registries["we\\"ird"]'),
        ((), ""),
    ],
)
def test_format_path(loc: tuple[str | int, ...], text: str) -> None:
    assert format_path(loc) == text


def test_object_storage_settings_longest_matching_key() -> None:
    config = parse_config(
        BASE
        + """object_storage:
  "s3://backups": {endpoint_url: "http://127.0.0.1:9000", region: eu-west-3, part_size: 64MiB}
  "s3://backups/dr/": {concurrency: 8, addressing_style: path, conditional_writes: false}
  s3://backups-old: {profile: legacy}
"""
    )
    assert config.s3_settings("backups/dr/web") == {
        "concurrency": 8,
        "addressing_style": "path",
        "conditional_writes": False,
    }
    assert config.s3_settings("backups/drift") == {
        "endpoint_url": "http://127.0.0.1:9000",
        "region": "eu-west-3",
        "part_size": 64 * 1024 * 1024,
    }
    assert config.s3_settings("backups-old") == {"profile": "legacy"}
    assert config.s3_settings("elsewhere/x") == {}


@pytest.mark.parametrize(
    ("entry", "where", "message"),
    [
        ('"backups": {}', "object_storage.backups", "is not an S3 location"),
        ('"s3://Bad_Bucket": {}', 'object_storage["s3://Bad_Bucket"]', "not a valid S3 bucket name"),
        ('"s3://bucket:v1": {}', 'object_storage["s3://bucket:v1"]', "without a tag"),
        ('"s3://backups": {secret_access_key: x}', 'object_storage["s3://backups"].secret_access_key', ""),
        ('"s3://backups": {part_size: lots}', 'object_storage["s3://backups"].part_size', "not a size"),
        ('"s3://backups": {part_size: 1MiB}', 'object_storage["s3://backups"].part_size', "5MiB to 5GiB"),
        ('"s3://backups": {endpoint_url: "ftp://x"}', 'object_storage["s3://backups"].endpoint_url', ""),
    ],
)
def test_object_storage_errors_name_the_key(entry: str, where: str, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(BASE + "object_storage:\n  " + entry + "\n")
    assert where in str(caught.value) and message in str(caught.value)
