"""What the benchmarks ran on: cores, memory, Python, PostgreSQL and its settings."""

from __future__ import annotations

import os
import platform
import sqlite3
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

import psutil
from sqlalchemy import create_engine, text

PG_SETTINGS = ("shared_buffers", "fsync", "synchronous_commit", "max_connections", "work_mem")
PACKAGES = ("slack-bolt", "slack-sdk", "gunicorn", "SQLAlchemy", "psycopg", "alembic")


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def describe(pg_url: str) -> dict[str, Any]:
    engine = create_engine(pg_url)
    try:
        with engine.connect() as conn:
            version = conn.scalar(text("SHOW server_version"))
            settings = {name: conn.scalar(text(f"SHOW {name}")) for name in PG_SETTINGS}
    finally:
        engine.dispose()
    return {
        "cores": os.cpu_count(),
        "physical_cores": psutil.cpu_count(logical=False),
        "cpu": cpu_model(),
        "memory_gib": round(psutil.virtual_memory().total / 2**30, 1),
        "os": platform.platform(),
        "python": sys.version.split()[0],
        "postgresql": version,
        "postgresql_settings": settings,
        "sqlite": sqlite3.sqlite_version,
        "packages": {name: _version(name) for name in PACKAGES},
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
    }


def _version(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "?"
