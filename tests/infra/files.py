"""The infra/ files as the tests read them: the compose file resolved by the real docker-compose, the
variables of infra/.env.example, the Dockerfile's instructions and .dockerignore's patterns."""

from __future__ import annotations

import fnmatch
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

from tests.conftest import REPO

INFRA = REPO / "infra"
COMPOSE = INFRA / "compose.yaml"
ENV_EXAMPLE = INFRA / ".env.example"
DOCKERFILE = INFRA / "Dockerfile"
INIT_SQL = INFRA / "postgres" / "init.sql"
AUTH_INI = INFRA / "mlflow" / "basic_auth.ini"
PREFECT_YAML = INFRA / "prefect.yaml"
K8S = INFRA / "k8s"

# Values a user would put in infra/.env: the secrets .env.example leaves empty get these.
TEST_SECRETS = {
    "POSTGRES_PASSWORD": "pg-secret-test",
    "MLFLOW_AUTH_ADMIN_PASSWORD": "mlflow-admin-test",
    "MLFLOW_FLASK_SERVER_SECRET_KEY": "flask-key-test",
    "PMF_SERVE_TOKEN": "serve-token-test",
}


def env_example() -> dict[str, str]:
    """infra/.env.example as NAME -> value (comments and blank lines skipped)."""
    pairs = {}
    for line in ENV_EXAMPLE.read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            name, _, value = line.partition("=")
            pairs[name.strip()] = value.strip()
    return pairs


def write_env(path: Path, values: dict[str, str]) -> Path:
    path.write_text("".join(f"{k}={v}\n" for k, v in values.items()))
    return path


def docker_compose() -> str:
    found = shutil.which("docker-compose")
    assert found, "docker-compose is not installed: `apt-get install -y docker-compose` (CI's .ci/run installs it)"
    return found


def compose(env_file: Path, *args: str) -> subprocess.CompletedProcess:
    """`docker-compose --env-file ENV -f infra/compose.yaml ARGS` with nothing of this process's
    environment but PATH, so only the env file supplies variables."""
    return subprocess.run(
        [docker_compose(), "--env-file", str(env_file), "-f", str(COMPOSE), *args],
        env={"PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=120,
    )


def resolved_compose(tmp: Path) -> dict[str, Any]:
    """The compose file as `docker-compose config` resolves it with .env.example's secrets filled in."""
    done = compose(write_env(tmp / "test.env", {**env_example(), **TEST_SECRETS}), "config")
    assert done.returncode == 0, done.stderr
    return yaml.safe_load(done.stdout)


def command_options(command: list[str]) -> dict[str, str]:
    """`--name=value` and `--name value` items of a command as {name: value} (flags map to '')."""
    options: dict[str, str] = {}
    for i, item in enumerate(command):
        if item.startswith("--"):
            name, eq, value = item[2:].partition("=")
            if not eq:
                following = command[i + 1] if i + 1 < len(command) else ""
                value = "" if following.startswith("--") else following
            options[name] = value
    return options


def host_port(url: str) -> tuple[str, int]:
    parts = urlsplit(url)
    if not (parts.hostname and parts.port):
        raise AssertionError(f"{url} names no host and port")
    return parts.hostname, parts.port


def database_of(url: str) -> str:
    return urlsplit(url).path.lstrip("/")


# ---- the Dockerfile -----------------------------------------------------------------------------------


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) in order, continuation lines joined, comments dropped."""
    joined, current = [], ""
    for line in DOCKERFILE.read_text().splitlines():
        if not current and (not line.strip() or line.lstrip().startswith("#")):
            continue
        if line.lstrip().startswith("#"):  # a comment inside a continued instruction
            continue
        current += line.rstrip("\\").rstrip() + " " if line.rstrip().endswith("\\") else line
        if not line.rstrip().endswith("\\"):
            joined.append(current.strip())
            current = ""
    return [(text.split(None, 1)[0].upper(), text.split(None, 1)[1] if " " in text else "") for text in joined]


def dockerfile_env() -> dict[str, str]:
    """Every ENV of the last stage as NAME -> value (`ENV A=1 B=2` form)."""
    instructions = dockerfile_instructions()
    last_from = max(i for i, (kind, _) in enumerate(instructions) if kind == "FROM")
    env: dict[str, str] = {}
    for kind, args in instructions[last_from:]:
        if kind == "ENV":
            env.update(dict(re.findall(r"(\w+)=(\S+)", args)))
    return env


def dockerignore_patterns() -> list[str]:
    return [
        line.strip() for line in (REPO / ".dockerignore").read_text().splitlines() if line.strip() and not line.startswith("#")
    ]


def dockerignored(path: str) -> bool:
    """Whether Docker leaves `path` (relative to the context) out, for the pattern forms .dockerignore
    uses: `name`, `dir/name`, `**/name` and globs (a folder's exclusion covers what is under it)."""
    parts = path.strip("/").split("/")
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    for pattern in dockerignore_patterns():
        anywhere = pattern.startswith("**/")
        bare = pattern[3:] if anywhere else pattern
        for prefix in prefixes:
            tail = prefix.split("/")[-1] if anywhere else prefix
            if fnmatch.fnmatchcase(tail, bare) or (anywhere and fnmatch.fnmatchcase(prefix, bare)):
                return True
    return False


def mounts(service: dict[str, Any]) -> list[dict[str, Any]]:
    """A service's volumes in the long form, from either form `docker-compose config` prints
    (1.29 prints `SOURCE:TARGET:MODE`, Compose v2 mappings)."""
    found = []
    for mount in service.get("volumes", []):
        if isinstance(mount, dict):
            found.append({**mount, "read_only": bool(mount.get("read_only"))})
            continue
        source, target, *mode = mount.split(":")
        kind = "bind" if source.startswith(("/", ".")) else "volume"
        found.append({"type": kind, "source": source, "target": target, "read_only": mode == ["ro"]})
    return found


def published(service: dict[str, Any]) -> list[dict[str, str]]:
    """A service's published ports as {host_ip, published, target}, from either printed form."""
    found = []
    for port in service.get("ports", []):
        if isinstance(port, dict):
            found.append({"host_ip": port.get("host_ip", ""), "published": str(port["published"]), "target": str(port["target"])})
            continue
        host_ip, host, target = port.split("/")[0].rsplit(":", 2)
        found.append({"host_ip": host_ip, "published": host, "target": target})
    return found


# ---- the real PostgreSQL (127.0.0.1:5432, user postgres, trust auth) ------------------------------------


def psql(*args: str, database: str = "test") -> subprocess.CompletedProcess:
    found = shutil.which("psql")
    assert found, "psql is not installed: `apt-get install -y postgresql-client`"
    return subprocess.run(
        [found, "-h", "127.0.0.1", "-p", "5432", "-U", "postgres", "-d", database, "-v", "ON_ERROR_STOP=1", "--no-psqlrc", *args],
        capture_output=True,
        text=True,
        timeout=120,
    )


def init_sql_databases() -> list[str]:
    return re.findall(r"CREATE DATABASE (\w+);", INIT_SQL.read_text())


def run_init_sql(prefix: str, folder: Path) -> list[str]:
    """Run infra/postgres/init.sql with every database name prefixed (`prefect` -> PREFIXprefect);
    returns the names as the script has them."""
    sql = INIT_SQL.read_text()
    names = init_sql_databases()
    for name in names:
        sql = re.sub(rf"\b(DATABASE|connect) {name}\b", rf"\1 {prefix}{name}", sql)
    script = folder / "init.sql"
    script.write_text(sql)
    done = psql("-f", str(script))
    assert done.returncode == 0, done.stderr
    return names


def drop_databases(prefix: str) -> None:
    for name in init_sql_databases():
        psql("-c", f"DROP DATABASE IF EXISTS {prefix}{name} WITH (FORCE)")
