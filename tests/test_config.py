"""The settings registry (issue 2): one registry -> CLI flags, BETULA_* env vars, TOML file.

Precedence (highest first): command line, environment, config file, default. End-to-end checks
go through the real CLI and read the value back from the ASGI scope (``root_path``); the rest
are unit tests of ``betula.config.Config.load``.
"""

from __future__ import annotations

import json
import re
import ssl

import httpx
import pytest

from betula.cli import build_parser
from betula.config import BY_NAME, SETTINGS, Config, ConfigError
from tests.support.client import get_json
from tests.support.server import one_error_line, run_cli

APP = "tests.apps.cli_apps:app"


# -- helpers ------------------------------------------------------------------------------------
def names(setting_name: str) -> str:
    """A regex matching a setting's name spelt with '_' or '-' (root_path / --root-path)."""
    return setting_name.replace("_", "[-_]")


@pytest.fixture(scope="module")
def help_text() -> str:
    code, output = run_cli("--help")
    assert code == 0
    return output


# Sample values for every setting: (text for the env var / flag, TOML literal, parsed value).
# A setting missing here is still checked, with its default as the sample.
SAMPLES: dict[str, tuple[str, str, object]] = {
    "app": ("pkg.mod:app", '"pkg.mod:app"', "pkg.mod:app"),
    "factory": ("true", "true", True),
    "app_dir": ("/some/dir", '"/some/dir"', "/some/dir"),
    "interface": ("wsgi", '"wsgi"', "wsgi"),
    "threads": ("4", "4", 4),
    "mount": ("/api=pkg.api:app", '["/api=pkg.api:app"]', (("/api", "pkg.api:app"),)),
    "static": ("/s=/", '["/s=/"]', (("/s", "/"),)),
    "runner": ("pkg.runner", '"pkg.runner"', "pkg.runner"),
    "reload_dir": ("src", '["src"]', ("src",)),
    "reload_include": ("*.html", '["*.html"]', ("*.html",)),
    "reload_exclude": ("tmp", '["tmp"]', ("tmp",)),
    "lifespan": ("off", '"off"', "off"),
    "lifespan_startup_timeout": ("2.5", "2.5", 2.5),
    "lifespan_shutdown_timeout": ("3.5", "3.5", 3.5),
    "root_path": ("/mnt", '"/mnt"', "/mnt"),
    "host": ("0.0.0.0", '"0.0.0.0"', "0.0.0.0"),
    "port": ("8123", "8123", 8123),
    "uds": ("/tmp/x.sock", '"/tmp/x.sock"', "/tmp/x.sock"),
    "uds_perms": ("600", '"600"', 0o600),
    "fd": ("7", "7", 7),
    "backlog": ("17", "17", 17),
    "ssl_certfile": ("/c.pem", '"/c.pem"', "/c.pem"),
    "ssl_keyfile": ("/k.pem", '"/k.pem"', "/k.pem"),
    "ssl_keyfile_password": ("pw", '"pw"', "pw"),
    "ssl_ca_certs": ("/ca.pem", '"/ca.pem"', "/ca.pem"),
    "ssl_cert_reqs": ("required", '"required"', ssl.CERT_REQUIRED),
    "ssl_ciphers": ("ECDHE+AESGCM", '"ECDHE+AESGCM"', "ECDHE+AESGCM"),
    "timeout_keep_alive": ("1.5", "1.5", 1.5),
    "timeout_request_header": ("2", "2.0", 2.0),
    "timeout_graceful_shutdown": ("4", "4.0", 4.0),
    "limit_concurrency": ("9", "9", 9),
    "limit_request_line": ("1000", "1000", 1000),
    "limit_request_fields": ("10", "10", 10),
    "limit_request_field_size": ("500", "500", 500),
    "limit_request_header_size": ("2000", "2000", 2000),
    "limit_request_body": ("1234", "1234", 1234),
    "server_header": ("false", "false", False),
    "date_header": ("0", "false", False),
    "log_level": ("warning", '"warning"', "warning"),
    "access_log": ("no", "false", False),
    "ws_deflate_level": ("1", "1", 1),
}
# Settings that are only valid together with another one.
COMPANIONS: dict[str, dict[str, str]] = {
    "ssl_keyfile": {"ssl_certfile": "/c.pem"},
    "ssl_cert_reqs": {"ssl_ca_certs": "/ca.pem"},
}


def sample(setting) -> tuple[str, str, object]:
    if setting.name in SAMPLES:
        return SAMPLES[setting.name]
    default = setting.default
    if isinstance(default, bool):
        return ("true" if default else "false", json.dumps(default), default)
    return (str(default), json.dumps(default), default)


SAMPLED = [s for s in SETTINGS if s.name != "config" and not (s.default is None
                                                             and s.name not in SAMPLES)]


# -- the registry generates the CLI -----------------------------------------------------------
def test_every_setting_has_flag_env_and_help(help_text):
    for setting in SETTINGS:
        assert setting.help and setting.help.strip(), setting.name
        assert setting.env == "BETULA_" + setting.name.upper()
        if setting.name == "app":
            continue  # the positional argument
        assert setting.cli, f"{setting.name} has no command-line flag"
        flag_re = rf"(^|\s|\[){re.escape(setting.flag)}(?=[\s,\]=]|$)"
        assert re.search(flag_re, help_text, re.MULTILINE), setting.flag
        if setting.boolean:
            assert "--no-" + setting.flag[2:] in help_text, setting.flag
        assert setting.env in help_text, f"--help does not mention {setting.env}"


UVICORN_FLAGS = [
    "--host", "--port", "--uds", "--fd", "--root-path", "--lifespan", "--log-level",
    "--access-log", "--no-access-log", "--ssl-certfile", "--ssl-keyfile",
    "--ssl-keyfile-password", "--ssl-ca-certs", "--ssl-cert-reqs", "--ssl-ciphers",
    "--timeout-keep-alive", "--timeout-graceful-shutdown", "--limit-concurrency", "--backlog",
    "--factory", "--app-dir", "--server-header", "--no-server-header", "--date-header",
    "--no-date-header", "--version",
]


@pytest.mark.parametrize("flag", UVICORN_FLAGS)
def test_help_lists_uvicorn_compatible_flag(help_text, flag):
    assert re.search(rf"(^|\s|\[){re.escape(flag)}([\s,\]=]|$)", help_text, re.MULTILINE), flag


@pytest.mark.parametrize("setting", [s for s in SAMPLED if s.cli], ids=lambda s: s.name)
def test_every_flag_sets_its_setting(setting):
    text, _, expected = sample(setting)
    argv = ["pkg:app"]
    if setting.boolean:
        argv.append(setting.flag if expected else "--no-" + setting.flag[2:])
    else:
        argv += [setting.flag, text]
    for name, value in COMPANIONS.get(setting.name, {}).items():
        argv += [BY_NAME[name].flag, value]
    cli = vars(build_parser().parse_args(argv))
    config = Config.load(cli, environ={})
    assert getattr(config, setting.name) == expected
    assert config.sources[setting.name] == "cli"


@pytest.mark.parametrize("setting", SAMPLED, ids=lambda s: s.name)
def test_every_env_var_sets_its_setting(setting):
    text, _, expected = sample(setting)
    environ = {setting.env: text}
    for name, value in COMPANIONS.get(setting.name, {}).items():
        environ[BY_NAME[name].env] = value
    config = Config.load({}, environ=environ)
    assert getattr(config, setting.name) == expected
    assert config.sources[setting.name] == "env"


@pytest.mark.parametrize("spelling", ["underscore", "dash"])
def test_toml_file_sets_every_setting(tmp_path, spelling):
    linked = ("ssl_keyfile", "ssl_certfile", "ssl_cert_reqs", "ssl_ca_certs", "uds", "fd")
    checked = [s for s in SAMPLED if s.name not in linked]  # linked ones: checked below
    lines = []
    for setting in checked:
        key = setting.name if spelling == "underscore" else setting.name.replace("_", "-")
        lines.append(f"{key} = {sample(setting)[1]}")
    path = tmp_path / "betula.toml"
    path.write_text("\n".join(lines) + "\n")
    config = Config.load({"config": str(path)}, environ={})
    for setting in checked:
        assert getattr(config, setting.name) == sample(setting)[2], setting.name
        assert config.sources[setting.name] == "file", setting.name
    path.write_text('ssl-certfile = "/c.pem"\nssl_keyfile = "/k.pem"\nssl_ca_certs = "/ca.pem"\n'
                    'ssl-cert-reqs = "optional"\nuds = "/tmp/a.sock"\n')
    config = Config.load({"config": str(path)}, environ={})
    assert (config.ssl_certfile, config.ssl_keyfile, config.ssl_ca_certs) == (
        "/c.pem", "/k.pem", "/ca.pem")
    assert config.ssl_cert_reqs == ssl.CERT_OPTIONAL and config.uds == "/tmp/a.sock"


# -- precedence (unit) ----------------------------------------------------------------------------
def test_precedence_cli_over_env_over_file_over_default(tmp_path):
    path = tmp_path / "betula.toml"
    path.write_text('root_path = "/file"\nport = 1111\nhost = "10.0.0.1"\n'
                    'timeout_keep_alive = 7\n')
    environ = {"BETULA_ROOT_PATH": "/env", "BETULA_PORT": "2222", "BETULA_BACKLOG": "33"}
    config = Config.load({"config": str(path), "root_path": "/cli", "backlog": "44"},
                         environ=environ)
    assert config.root_path == "/cli" and config.sources["root_path"] == "cli"
    assert config.backlog == 44 and config.sources["backlog"] == "cli"
    assert config.port == 2222 and config.sources["port"] == "env"
    assert config.host == "10.0.0.1" and config.sources["host"] == "file"
    assert config.timeout_keep_alive == 7.0 and config.sources["timeout_keep_alive"] == "file"
    assert config.log_level == BY_NAME["log_level"].default
    assert config.sources["log_level"] == "default"


def test_config_file_from_env_and_cli_config_wins(tmp_path):
    from_env = tmp_path / "env.toml"
    from_env.write_text('root_path = "/from-env-file"\n')
    from_cli = tmp_path / "cli.toml"
    from_cli.write_text('root_path = "/from-cli-file"\n')
    config = Config.load({}, environ={"BETULA_CONFIG": str(from_env)})
    assert config.root_path == "/from-env-file"
    config = Config.load({"config": str(from_cli)}, environ={"BETULA_CONFIG": str(from_env)})
    assert config.root_path == "/from-cli-file"


def test_defaults_without_any_source():
    config = Config.load({}, environ={})
    for setting in SETTINGS:
        assert config.sources[setting.name] == "default"
    assert config.host == "127.0.0.1" and config.port == 8000
    assert config.lifespan == "auto" and config.access_log is True


# -- end to end: values reach the running server ----------------------------------------------
def test_env_var_sets_root_path(serve):
    server = serve(APP, env={"BETULA_ROOT_PATH": "/x"})
    assert get_json(server, "/probe")["root_path"] == "/x"


@pytest.mark.parametrize("key", ["root_path", "root-path"])
def test_toml_file_sets_root_path(serve, tmp_path, key):
    path = tmp_path / "betula.toml"
    path.write_text(f'{key} = "/from-toml"\n')
    server = serve(APP, "--config", str(path))
    assert get_json(server, "/probe")["root_path"] == "/from-toml"


def test_toml_file_names_the_app(serve, tmp_path):
    path = tmp_path / "betula.toml"
    path.write_text(f'app = "{APP}"\nroot_path = "/cfg"\n')
    server = serve("--config", str(path))
    assert get_json(server, "/probe")["root_path"] == "/cfg"


def test_cli_app_overrides_file_app(serve, tmp_path):
    path = tmp_path / "betula.toml"
    path.write_text('app = "tests.apps.cli_apps:not_callable"\n')
    server = serve(APP, "--config", str(path))
    assert get_json(server, "/probe")["type"] == "http"


@pytest.mark.parametrize("cli,env,file,expected", [
    ("/cli", "/env", "/file", "/cli"),
    (None, "/env", "/file", "/env"),
    (None, None, "/file", "/file"),
], ids=["cli-wins", "env-over-file", "file-over-default"])
def test_precedence_end_to_end(serve, tmp_path, cli, env, file, expected):
    path = tmp_path / "betula.toml"
    path.write_text(f'root_path = "{file}"\n')
    args = [APP, "--config", str(path)]
    if cli:
        args += ["--root-path", cli]
    server = serve(*args, env={"BETULA_ROOT_PATH": env} if env else None)
    assert get_json(server, "/probe")["root_path"] == expected


def test_env_var_sets_boolean_and_factory(serve):
    server = serve("tests.apps.cli_apps:create_app",
                   env={"BETULA_FACTORY": "true", "BETULA_SERVER_HEADER": "false"})
    response = httpx.get(server.base_url + "/", timeout=10)
    assert response.text == "made by factory"
    assert "server" not in response.headers


# -- invalid values: non-zero exit, one clear line naming the setting -----------------------------
INVALID_CLI = [
    (["--port", "abc"], "port"),
    (["--port", "70000"], "port"),
    (["--limit-request-body", "-1"], "limit_request_body"),
    (["--limit-concurrency", "lots"], "limit_concurrency"),
    (["--timeout-keep-alive", "0"], "timeout_keep_alive"),
    (["--timeout-keep-alive", "soon"], "timeout_keep_alive"),
    (["--uds-perms", "rwx"], "uds_perms"),
    (["--root-path", "no-leading-slash"], "root_path"),
    (["--ssl-cert-reqs", "maybe", "--ssl-ca-certs", "/ca.pem"], "ssl_cert_reqs"),
    (["--backlog", "-5"], "backlog"),
    (["--ws-deflate-level", "0"], "ws_deflate_level"),
    (["--ws-deflate-level", "10"], "ws_deflate_level"),
]


@pytest.mark.parametrize("args,setting", INVALID_CLI, ids=[" ".join(a[:2]) for a, _ in INVALID_CLI])
def test_invalid_cli_value(args, setting):
    code, output = run_cli(APP, *args)
    assert code != 0
    line = one_error_line(output)
    assert re.search(names(setting), line), line
    assert args[1] in line, line  # the offending value is shown


CHOICES = [(["--lifespan", "maybe"], "lifespan"), (["--log-level", "loud"], "log_level")]


@pytest.mark.parametrize("args,setting", CHOICES, ids=["lifespan", "log-level"])
def test_invalid_choice_names_setting_and_value(args, setting):
    code, output = run_cli(APP, *args)
    assert code != 0
    assert "Traceback" not in output
    assert any(re.search(names(setting), line) and args[1] in line
               for line in output.splitlines()), output


@pytest.mark.parametrize("args", [c[0] for c in CHOICES], ids=["lifespan", "log-level"])
def test_invalid_choice_is_one_line(args):
    code, output = run_cli(APP, *args)
    assert code != 0
    one_error_line(output)


@pytest.mark.parametrize("env,setting", [
    ({"BETULA_PORT": "abc"}, "port"),
    ({"BETULA_LIFESPAN": "maybe"}, "lifespan"),
    ({"BETULA_ACCESS_LOG": "perhaps"}, "access_log"),
    ({"BETULA_LIMIT_REQUEST_BODY": "-1"}, "limit_request_body"),
], ids=["port", "lifespan", "access_log", "limit_request_body"])
def test_invalid_env_value(env, setting):
    code, output = run_cli(APP, env=env)
    assert code != 0
    line = one_error_line(output)
    assert re.search(names(setting), line), line
    assert next(iter(env)) in line, line  # says the value came from the environment


def test_unknown_key_in_toml(tmp_path):
    path = tmp_path / "betula.toml"
    path.write_text('port = 0\nbogus_setting_xyz = 1\n')
    code, output = run_cli(APP, "--config", str(path))
    assert code != 0
    line = one_error_line(output)
    assert "bogus_setting_xyz" in line and str(path) in line


def test_bad_toml(tmp_path):
    path = tmp_path / "betula.toml"
    path.write_text('port = = 8000\n[unclosed\n')
    code, output = run_cli(APP, "--config", str(path))
    assert code != 0
    line = one_error_line(output)
    assert str(path) in line and "toml" in line.lower()


def test_invalid_value_in_toml(tmp_path):
    path = tmp_path / "betula.toml"
    path.write_text('port = "eighty"\n')
    code, output = run_cli(APP, "--config", str(path))
    assert code != 0
    line = one_error_line(output)
    assert re.search(names("port"), line) and str(path) in line, line


def test_missing_config_file(tmp_path):
    path = tmp_path / "nope.toml"
    code, output = run_cli(APP, "--config", str(path))
    assert code != 0
    line = one_error_line(output)
    assert str(path) in line


def test_unknown_flag_fails():
    code, output = run_cli(APP, "--bogus-flag-xyz", "1")
    assert code != 0
    assert "--bogus-flag-xyz" in output and "Traceback" not in output


@pytest.mark.parametrize("args,needles", [
    (["--ssl-keyfile", "/k.pem"], ("ssl_keyfile", "ssl_certfile")),
    (["--uds", "/tmp/x.sock", "--fd", "3"], ("uds", "fd")),
    (["--ssl-certfile", "/c.pem", "--ssl-cert-reqs", "required"], ("ssl_cert_reqs",
                                                                    "ssl_ca_certs")),
], ids=["keyfile-without-certfile", "uds-and-fd", "cert-reqs-without-ca"])
def test_inconsistent_settings(args, needles):
    code, output = run_cli(APP, *args)
    assert code != 0
    line = one_error_line(output)
    for needle in needles:
        assert re.search(names(needle), line), line


def test_config_load_rejects_unknown_cli_name():
    with pytest.raises(ConfigError):
        Config.load({"no_such_setting": 1}, environ={})


def test_config_load_error_names_setting():
    with pytest.raises(ConfigError, match=r"limit_request_body"):
        Config.load({"limit_request_body": -1}, environ={})
    with pytest.raises(ConfigError, match=r"BETULA_PORT"):
        Config.load({}, environ={"BETULA_PORT": "x"})

