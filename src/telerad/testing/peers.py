"""Real processes for integration tests and benchmarks: telerad itself, Orthanc, dcmtk tools.

Everything listens on 127.0.0.1 and is stopped by the context manager that started it.
(Orthanc 1.10 has no bind-address setting: it is configured to refuse remote HTTP access
and to accept C-STORE only from the AE titles it is given.)
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from pydicom import Dataset, dcmread
from pydicom.dataset import FileMetaDataset
from pydicom.uid import UID, ExplicitVRLittleEndian, generate_uid

from telerad.dicom.mwl import MODALITY_WORKLIST_FIND

ORTHANC = "/usr/sbin/Orthanc"
ORTHANC_PLUGINS = Path("/usr/share/orthanc/plugins")


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_port(port: int, *, timeout: float = 30.0,
                  process: subprocess.Popen[bytes] | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"process exited with {process.returncode} before listening")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port} after {timeout} s")


def wait_for_http(url: str, *, timeout: float = 30.0,
                  process: subprocess.Popen[bytes] | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"process exited with {process.returncode} before serving")
        try:
            with urllib.request.urlopen(url, timeout=1) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.05)
    raise TimeoutError(f"{url} not answering after {timeout} s")


def dcmtk_env() -> dict[str, str]:
    """Environment for dcmtk tools: Debian's build keeps Nagle on unless told otherwise."""
    return {**os.environ, "TCP_NODELAY": "1"}


def storescu(
    paths: Sequence[Path | str], *, port: int, calling: str, called: str = "TELERAD",
    extra: Sequence[str] = (), check: bool = False, timeout: float = 600,
) -> subprocess.CompletedProcess[str]:
    """dcmtk ``storescu`` to 127.0.0.1:``port`` (folders are scanned recursively)."""
    args = ["storescu", "+sd", "+r", "-aet", calling, "-aec", called, *extra,
            "127.0.0.1", str(port), *map(str, paths)]
    return subprocess.run(args, capture_output=True, text=True, env=dcmtk_env(), check=check,
                          timeout=timeout)


def findscu(*, port: int, query: Path, out: Path, calling: str, called: str = "TELERAD",
            keys: Sequence[str] = (), timeout: float = 60
            ) -> tuple[subprocess.CompletedProcess[str], list[Dataset]]:
    """dcmtk ``findscu -W`` (Modality Worklist, PS3.4 K.6) with the identifier in ``query``
    (``keys``: ``-k`` overrides): the process, and the response identifiers in the order
    received (written by ``-X`` into ``out``)."""
    out.mkdir(parents=True, exist_ok=True)
    args = ["findscu", "-W", "-v", "-X", "-od", str(out), "-aet", calling, "-aec", called]
    for key in keys:
        args += ["-k", key]
    result = subprocess.run([*args, "127.0.0.1", str(port), str(query)], capture_output=True,
                            text=True, env=dcmtk_env(), timeout=timeout, check=False)
    return result, [dcmread(path, force=True) for path in sorted(out.glob("rsp*.dcm"))]


def worklist_query(path: Path, *, patient_name: str = "", modality: str = "") -> Path:
    """A worklist query file as a scanner sends it (PS3.4 K.6.1.2.2): the return keys of the
    request and patient, and the Scheduled Procedure Step item's keys."""
    step = Dataset()
    step.Modality = modality
    step.ScheduledStationAETitle = ""
    step.ScheduledProcedureStepStartDate = ""
    step.ScheduledProcedureStepStartTime = ""
    step.ScheduledProcedureStepID = ""
    step.ScheduledProtocolCodeSequence = []
    ds = Dataset()
    ds.SpecificCharacterSet = "ISO_IR 192"
    ds.AccessionNumber = ""
    ds.PatientName = patient_name
    ds.PatientID = ""
    ds.PatientBirthDate = ""
    ds.PatientSex = ""
    ds.OtherPatientIDsSequence = []
    ds.StudyInstanceUID = ""
    ds.RequestedProcedureID = ""
    ds.RequestedProcedurePriority = ""
    ds.ScheduledProcedureStepSequence = [step]
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = UID(MODALITY_WORKLIST_FIND)
    ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.save_as(path, enforce_file_format=True)
    return path


def echoscu(*, port: int, calling: str, called: str = "TELERAD", timeout: float = 60
            ) -> subprocess.CompletedProcess[str]:
    """dcmtk ``echoscu`` (C-ECHO, PS3.7 §9.1.5) to 127.0.0.1:``port``."""
    return subprocess.run(["echoscu", "-aet", calling, "-aec", called, "127.0.0.1", str(port)],
                          capture_output=True, text=True, env=dcmtk_env(), timeout=timeout,
                          check=False)


def telerad_command(*args: str, data_dir: Path, env: dict[str, str] | None = None,
                    check: bool = True, input_text: str | None = None,
                    ) -> subprocess.CompletedProcess[str]:
    """Run ``telerad ARGS --data-dir DATA_DIR`` in a child process (``input_text`` on stdin)."""
    return subprocess.run(
        [sys.executable, "-m", "telerad", *args, "--data-dir", str(data_dir)],
        capture_output=True, text=True, env={**os.environ, **(env or {})}, check=check,
        timeout=120, input=input_text,
    )


@dataclass
class TeleradServer:
    """``telerad serve`` in a child process, on free loopback ports."""

    data_dir: Path
    env: dict[str, str] = field(default_factory=dict)
    ae_title: str = "TELERAD"
    http_port: int = field(default_factory=free_port)
    dicom_port: int = field(default_factory=free_port)
    #: Port of the HL7 listener (``--mllp``); None: started without one.
    mllp_port: int | None = None
    process: subprocess.Popen[bytes] | None = None
    log_path: Path | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def dicomweb_url(self) -> str:
        return f"{self.base_url}/dicomweb"

    def start(self, timeout: float = 60.0) -> TeleradServer:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.log_path = self.data_dir / "serve.log"
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "telerad", "serve", "--data-dir", str(self.data_dir),
             "--http", f"127.0.0.1:{self.http_port}", "--dicom", f"127.0.0.1:{self.dicom_port}",
             "--ae-title", self.ae_title,
             *(["--mllp", f"127.0.0.1:{self.mllp_port}"] if self.mllp_port else [])],
            stdout=log, stderr=subprocess.STDOUT, env={**os.environ, **self.env},
        )
        log.close()
        wait_for_http(f"{self.base_url}/healthz", timeout=timeout, process=self.process)
        wait_for_port(self.dicom_port, timeout=timeout, process=self.process)
        if self.mllp_port:
            wait_for_port(self.mllp_port, timeout=timeout, process=self.process)
        return self

    def stop(self, timeout: float = 30.0) -> int:
        """SIGTERM, then wait; return the exit code."""
        if self.process is None or self.process.poll() is not None:
            return self.process.returncode if self.process else 0
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            raise

    def kill(self) -> None:
        """SIGKILL: no chance to clean up."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path else ""

    def command(self, *args: str) -> str:
        """Run a ``telerad`` sub-command on this server's data directory; return stdout."""
        return telerad_command(*args, data_dir=self.data_dir, env=self.env).stdout.strip()

    def __enter__(self) -> TeleradServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


@dataclass
class Orthanc:
    """Debian's Orthanc with its DICOMweb plugin, on loopback ports, in its own folder."""

    root: Path
    aet: str = "ORTHANC"
    http_port: int = field(default_factory=free_port)
    dicom_port: int = field(default_factory=free_port)
    #: name -> (AE title, port on 127.0.0.1) of peers it may send to / accept from.
    modalities: dict[str, tuple[str, int]] = field(default_factory=dict)
    settings: dict[str, object] = field(default_factory=dict)
    process: subprocess.Popen[bytes] | None = None

    @staticmethod
    def available() -> bool:
        return Path(ORTHANC).exists() and (ORTHANC_PLUGINS / "libOrthancDicomWeb.so").exists()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    def start(self, timeout: float = 60.0) -> Orthanc:
        self.root.mkdir(parents=True, exist_ok=True)
        config = {
            "Name": "telerad-test-peer",
            "StorageDirectory": str(self.root / "storage"),
            "IndexDirectory": str(self.root / "index"),
            "HttpPort": self.http_port,
            "DicomPort": self.dicom_port,
            "DicomAet": self.aet,
            "RemoteAccessAllowed": False,
            "AuthenticationEnabled": False,
            "DicomAlwaysAllowStore": True,
            "DicomCheckCalledAet": False,
            "DicomModalities": {
                name: [aet, "127.0.0.1", port] for name, (aet, port) in self.modalities.items()
            },
            "Plugins": [str(ORTHANC_PLUGINS / "libOrthancDicomWeb.so")],
            "DicomWeb": {"Enable": True, "Root": "/dicom-web/"},
            **self.settings,
        }
        config_path = self.root / "orthanc.json"
        config_path.write_text(json.dumps(config, indent=2))
        log = (self.root / "orthanc.log").open("ab")
        self.process = subprocess.Popen([ORTHANC, str(config_path)], stdout=log,
                                        stderr=subprocess.STDOUT, env=dcmtk_env(),
                                        cwd=self.root)
        log.close()
        wait_for_http(f"{self.base_url}/system", timeout=timeout, process=self.process)
        return self

    def request(self, method: str, path: str, body: object | None = None) -> object:
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(f"{self.base_url}{path}", data=data, method=method)
        with urllib.request.urlopen(req, timeout=600) as response:
            raw = response.read()
        return json.loads(raw) if raw else None

    def upload(self, data: bytes) -> dict[str, object]:
        """``POST /instances`` of one Part-10 file; Orthanc's answer (ID, Status, ...)."""
        req = urllib.request.Request(f"{self.base_url}/instances", data=data, method="POST",
                                     headers={"Content-Type": "application/dicom"})
        with urllib.request.urlopen(req, timeout=600) as response:
            answer = json.loads(response.read())
        assert isinstance(answer, dict)
        return answer

    def log(self) -> str:
        path = self.root / "orthanc.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def __enter__(self) -> Orthanc:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


@contextlib.contextmanager
def storescp(folder: Path, *, port: int | None = None, pdu: int = 131072,
             extra: Sequence[str] = (), keep: bool = False) -> Iterator[int]:
    """dcmtk ``storescp`` (AE title STORESCP) writing to ``folder``: the native floor for
    ingest speed, and with ``extra=("+B", "+xa")`` a witness of the exact bytes a peer sent
    (bit-preserving, every transfer syntax accepted). ``folder`` is removed on exit unless
    ``keep``."""
    port = port or free_port()
    folder.mkdir(parents=True, exist_ok=True)
    process = subprocess.Popen(
        ["storescp", "-od", str(folder), "-pdu", str(pdu), *extra,
         "-aet", "STORESCP", str(port)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=dcmtk_env(),
    )
    try:
        wait_for_port(port, process=process)
        yield port
    finally:
        process.terminate()
        process.wait(10)
        if not keep:
            shutil.rmtree(folder, ignore_errors=True)
