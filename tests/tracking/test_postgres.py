"""An MLflow server backed by PostgreSQL, as a team would run it: Debian's PostgreSQL started
here on loopback (as the `postgres` user when we are root), a real pipeline run logged to it."""

from __future__ import annotations

import time

import pytest
from mlflow.tracking import MlflowClient

from .runs import check_logged, run_against
from .servers import new_postgres, postgres_account, postgres_bindir

pytestmark = pytest.mark.e2e


@pytest.fixture
def postgres():
    bindir = postgres_bindir()
    if bindir is None:
        pytest.skip("PostgreSQL server binaries (initdb, pg_ctl, createdb) not found: install "
                    "Debian's postgresql package (.ci/run does)")
    account = postgres_account()
    if account is None:
        pytest.skip("running as root and there is no `postgres` user to run PostgreSQL as "
                    "(it refuses to run as root)")
    pytest.importorskip("psycopg2", reason="psycopg2-binary missing: pip install -e '.[postgres]'")
    cluster = new_postgres(bindir, account)
    try:
        cluster.start()
        print(f"\nPostgreSQL ({bindir}) as {account.pw_name}: initdb + start + createdb "
              f"{cluster.startup_s:.1f} s")
        yield cluster
    finally:
        assert cluster.stop(), "PostgreSQL did not stop"


def test_pipeline_run_logged_to_a_postgres_backed_server(mirror, postgres, mlflow_server,
                                                         tmp_path):
    began = time.perf_counter()
    server = mlflow_server(postgres.uri())
    print(f"\nmlflow server on PostgreSQL ready in {time.perf_counter() - began:.1f} s")
    out = tmp_path / "out"
    run_id, _ = run_against(server.uri, out)
    check_logged(MlflowClient(server.uri), run_id, out)
    import psycopg2  # the rows are really in PostgreSQL

    with psycopg2.connect(host="127.0.0.1", port=postgres.port, user="quench",
                          dbname="mlflow") as conn, conn.cursor() as cur:
        cur.execute("SELECT count(*) FROM runs WHERE run_uuid = %s AND status = 'FINISHED'",
                    (run_id,))
        assert cur.fetchone()[0] == 1
        cur.execute("SELECT value FROM metrics WHERE run_uuid = %s AND key = %s",
                    (run_id, "candidate.perplexity"))
        assert cur.fetchone()[0] == pytest.approx(
            MlflowClient(server.uri).get_run(run_id).data.metrics["candidate.perplexity"])
