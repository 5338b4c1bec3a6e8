"""``telerad demo``: the server on the embedded default, an example site, a CT sent over DICOM."""

from __future__ import annotations

import threading
import time

from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian
from rich.console import Console
from sqlalchemy import select

from telerad.archive.models import Study, StudyStatus
from telerad.auth.service import create_token
from telerad.cli.server import run_server
from telerad.db import transaction
from telerad.dicom.synthetic import SyntheticStudy, instances
from telerad.errors import NotFound
from telerad.gateway.dicom import DicomGateway
from telerad.gateway.scu import send_datasets
from telerad.runtime import Runtime
from telerad.workflow.sites.service import add_site, site_by_name

SITE = "Example Hospital"
SCANNER_AE = "EXAMPLE_CT"


def _prepare(runtime: Runtime) -> str:
    now = runtime.clock.now()
    with transaction(runtime.sessions) as session:
        try:
            site_by_name(session, SITE)
        except NotFound:
            add_site(session, name=SITE, ae_titles=[SCANNER_AE], now=now)
        _row, token = create_token(session, name="demo", now=now)
    return token


def _wait_complete(runtime: Runtime, study_instance_uid: str, console: Console) -> None:
    deadline = time.monotonic() + runtime.settings.stable_age + 30
    while time.monotonic() < deadline:
        with transaction(runtime.sessions, readonly=True) as session:
            study = session.scalar(
                select(Study).where(Study.study_instance_uid == study_instance_uid)
            )
            if study is not None and study.status == StudyStatus.COMPLETE:
                console.print(f"[green]study complete[/green]: {study.number_of_instances} "
                              f"images, {study.number_of_series} series")
                return
        time.sleep(0.5)
    console.print("[yellow]the study is not complete yet; is the worker running?[/yellow]")


def run_demo(
    runtime: Runtime, *, http_host: str, http_port: int, dicom_host: str, dicom_port: int,
    slices: int, console: Console,
) -> None:
    token = _prepare(runtime)
    base = f"http://{http_host}:{http_port}"

    def send(gateway: DicomGateway) -> None:
        study = SyntheticStudy(slices=slices, accession_number=f"DEMO{int(time.time()) % 100000}")
        console.print(f"sending a synthetic CT ({slices} slices) from {SCANNER_AE} over DICOM ...")
        started = time.perf_counter()
        sent = send_datasets(
            instances(study), host=dicom_host, port=gateway.port, calling_ae_title=SCANNER_AE,
            called_ae_title=runtime.settings.ae_title, sop_class_uid=CTImageStorage,
            transfer_syntax_uid=ExplicitVRLittleEndian,
        )
        console.print(
            f"[green]stored {sent} images in {time.perf_counter() - started:.1f} s[/green]; "
            f"the study completes {runtime.settings.stable_age:g} s after its last image.",
            soft_wrap=True,
        )
        _wait_complete(runtime, study.study_instance_uid, console)
        console.print(
            f"  token:    {token}\n"
            f"  studies:  curl -H 'Authorization: Bearer {token}' {base}/api/studies\n"
            f"  QIDO-RS:  curl -H 'Authorization: Bearer {token}' {base}/dicomweb/studies\n"
            f"  API docs: {base}/docs\n"
            f"Press Ctrl-C to stop.",
            soft_wrap=True,
        )

    run_server(
        runtime, http_host=http_host, http_port=http_port, dicom_host=dicom_host,
        dicom_port=dicom_port,
        on_ready=lambda gw: threading.Thread(target=send, args=(gw,), daemon=True).start(),
    )
