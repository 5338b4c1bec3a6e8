"""The outbox's transports against peers telerad did not write: python-hl7's MLLP server as
the RIS (its ACKs built by python-hl7), Orthanc as the hospital PACS, and a pynetdicom
storage SCP answering the C-STORE statuses a PACS may answer.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from io import BytesIO
from pathlib import Path

import pytest
from pydicom import dcmread
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import (
    PYDICOM_IMPLEMENTATION_UID,
    CTImageStorage,
    EncapsulatedPDFStorage,
    ExplicitVRLittleEndian,
    generate_uid,
)
from pynetdicom import AE, evt
from pynetdicom.presentation import AllStoragePresentationContexts

from telerad.delivery.channels import Address, Outcome, Outgoing, Verdict
from telerad.delivery.models import ChannelKind
from telerad.dicom.synthetic import UID_PREFIX, SyntheticStudy, instance
from telerad.gateway.channels import DicomStoreSender, Hl7MllpSender, senders
from telerad.hl7.messages import parse
from telerad.testing.peers import Orthanc, free_port
from telerad.testing.ris import RisPeer

pytestmark = pytest.mark.peers

needs_orthanc = pytest.mark.skipif(not Orthanc.available(),
                                   reason="Orthanc with its DICOMweb plugin")


def oru(control_id: str) -> bytes:
    """A minimal ORU^R01 (HL7 v2.5 §7.3.1): the report text in OBX segments."""
    return "\r".join([
        "MSH|^~\\&|TELERAD|TELERAD|RIS|CH_VALENCE|20250314101502+0100||ORU^R01^ORU_R01|"
        f"{control_id}|P|2.5|||AL|NE||UNICODE UTF-8",
        "PID|1||784512^^^CHV^PI||SYNTHÉTIQUE^PATIENTE||19600101|F",
        "OBR|1|ORD1|ACC1|CTHEAD^Scanner cérébral^L|||20250314094500|||||||||||||||"
        "20250314101500|||F",
        "OBX|1|TX|CTHEAD^Scanner cérébral^L|1|Pas d'anomalie.||||||F",
        "OBX|2|TX|CTHEAD^Scanner cérébral^L|2|Conclusion : examen normal.||||||F",
    ]).encode() + b"\r"


def oru_outgoing(*control_ids: str) -> list[Outgoing]:
    return [Outgoing(delivery_id=n, document="ORU^R01", payload=oru(c))
            for n, c in enumerate(control_ids, start=1)]


def part10(ds: Dataset) -> bytes:
    buffer = BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def encapsulated_pdf(study_instance_uid: str) -> Dataset:
    """A small Encapsulated PDF (PS3.3 A.45.1) in the study."""
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    ds.SpecificCharacterSet = "ISO_IR 192"
    ds.SOPClassUID = EncapsulatedPDFStorage
    ds.SOPInstanceUID = generate_uid(UID_PREFIX)
    ds.StudyInstanceUID = study_instance_uid
    ds.SeriesInstanceUID = generate_uid(UID_PREFIX)
    ds.PatientName, ds.PatientID = "SYNTHETIC^PATIENT", "SYN0001"
    ds.PatientBirthDate, ds.PatientSex = "19600101", "O"
    ds.StudyDate, ds.StudyTime, ds.AccessionNumber, ds.StudyID = "20250314", "094500", "A1", "1"
    ds.ReferringPhysicianName = ""
    ds.Modality, ds.SeriesNumber, ds.InstanceNumber = "DOC", 99, 1
    ds.ContentDate, ds.ContentTime, ds.AcquisitionDateTime = "20250314", "101500", ""
    ds.ConversionType, ds.BurnedInAnnotation = "WSD", "YES"
    ds.DocumentTitle = "Compte rendu"
    ds.ConceptNameCodeSequence = []
    ds.MIMETypeOfEncapsulatedDocument = "application/pdf"
    ds.EncapsulatedDocument = (b"%PDF-1.4\n1 0 obj<</Type/Catalog/Pages 2 0 R>>endobj\n"
                               b"2 0 obj<</Type/Pages/Kids[]/Count 0>>endobj\ntrailer"
                               b"<</Root 1 0 R>>\n%%EOF\n")
    return ds


def documents() -> list[Outgoing]:
    """A CT image and a report PDF of the same study, as Part 10 files."""
    study = SyntheticStudy(slices=1, rows=16, columns=16)
    datasets = [instance(study, 0), encapsulated_pdf(study.study_instance_uid)]
    return [Outgoing(delivery_id=n, document=str(ds.Modality), payload=part10(ds))
            for n, ds in enumerate(datasets, start=1)]


def sop_instance_uid(document: Outgoing) -> str:
    return str(dcmread(BytesIO(document.payload)).SOPInstanceUID)


def test_senders_cover_every_channel_kind():
    table = senders()
    assert set(table) == set(ChannelKind)
    assert isinstance(table[ChannelKind.HL7_MLLP], Hl7MllpSender)
    assert isinstance(table[ChannelKind.DICOM_STORE], DicomStoreSender)


# --- HL7 over MLLP to python-hl7's server ---------------------------------------------------

@pytest.fixture
def ris() -> Iterator[RisPeer]:
    with RisPeer() as peer:
        yield peer


def test_results_are_acknowledged_by_the_ris(ris: RisPeer):
    outcomes = Hl7MllpSender().send(Address(host="127.0.0.1", port=ris.port),
                                    oru_outgoing("MSG1", "MSG2"))
    assert outcomes == [Outcome(delivery_id=1, verdict=Verdict.ACKNOWLEDGED, answer="AA"),
                        Outcome(delivery_id=2, verdict=Verdict.ACKNOWLEDGED, answer="AA")]
    received = ris.wait_for(2, timeout=10)
    assert [parse(m).control_id for m in received] == ["MSG1", "MSG2"]
    # The text went through as sent, accents included (MSH-18 UNICODE UTF-8).
    assert parse(received[0]).field("PID", 5) == "SYNTHÉTIQUE"
    assert received[1] == oru("MSG2").decode()


@pytest.mark.parametrize(("ack_code", "verdict"), [("AE", Verdict.REJECTED),
                                                   ("AR", Verdict.RETRY)])
def test_a_ris_refusing_stops_the_batch(ris: RisPeer, ack_code: str, verdict: Verdict):
    ris.ack_code = ack_code
    outcomes = Hl7MllpSender().send(Address(host="127.0.0.1", port=ris.port),
                                    oru_outgoing("MSG1", "MSG2"))
    assert outcomes == [Outcome(delivery_id=1, verdict=verdict, answer=ack_code)]
    assert [parse(m).control_id for m in ris.received] == ["MSG1"]


def test_a_ris_down_then_back(ris: RisPeer):
    address = Address(host="127.0.0.1", port=ris.port)
    sender = Hl7MllpSender()
    ris.stop()
    assert sender.send(address, oru_outgoing("MSG1")) == [
        Outcome(delivery_id=1, verdict=Verdict.RETRY, answer="connection refused")]
    ris.start()
    assert ris.port == address.port
    assert [o.verdict for o in sender.send(address, oru_outgoing("MSG1", "MSG2"))] == [
        Verdict.ACKNOWLEDGED, Verdict.ACKNOWLEDGED]
    assert [parse(m).control_id for m in ris.received] == ["MSG1", "MSG2"]


# --- DICOM C-STORE to Orthanc -------------------------------------------------------------------

def stored_uids(peer: Orthanc) -> set[str]:
    answer = peer.request("GET", "/instances?expand")
    assert isinstance(answer, list)
    return {item["MainDicomTags"]["SOPInstanceUID"] for item in answer}


@needs_orthanc
def test_orthanc_stores_what_is_sent(tmp_path: Path):
    sent = documents()
    with Orthanc(tmp_path / "orthanc", aet="HOSPITAL_PACS") as peer:
        address = Address(host="127.0.0.1", port=peer.dicom_port,
                          called_ae_title="HOSPITAL_PACS", calling_ae_title="TELERAD")
        outcomes = DicomStoreSender().send(address, sent)
        assert outcomes == [Outcome(delivery_id=1, verdict=Verdict.ACKNOWLEDGED, answer="0x0000"),
                            Outcome(delivery_id=2, verdict=Verdict.ACKNOWLEDGED, answer="0x0000")]
        assert stored_uids(peer) == {sop_instance_uid(d) for d in sent}


@needs_orthanc
def test_orthanc_down_then_back(tmp_path: Path):
    sent = documents()
    peer = Orthanc(tmp_path / "orthanc", aet="HOSPITAL_PACS")
    address = Address(host="127.0.0.1", port=peer.dicom_port,
                      called_ae_title="HOSPITAL_PACS", calling_ae_title="TELERAD")
    assert DicomStoreSender().send(address, sent) == [
        Outcome(delivery_id=1, verdict=Verdict.RETRY, answer="no connection to the PACS")]
    with peer:
        assert [o.verdict for o in DicomStoreSender().send(address, sent)] == [
            Verdict.ACKNOWLEDGED, Verdict.ACKNOWLEDGED]
        assert stored_uids(peer) == {sop_instance_uid(d) for d in sent}


# --- the statuses a PACS may answer (pynetdicom storage SCP) ------------------------------------

class FakePacs:
    """A pynetdicom storage SCP on loopback answering the statuses it is given, in order."""

    def __init__(self, *, statuses: list[int], sop_classes: list[str] | None = None,
                 calling_ae_titles: list[str] | None = None) -> None:
        self.statuses = iter(statuses)
        self.received: list[str] = []
        ae = AE(ae_title="FAKE_PACS")
        if sop_classes is None:
            ae.supported_contexts = AllStoragePresentationContexts
        else:
            for sop_class in sop_classes:
                ae.add_supported_context(sop_class)
        if calling_ae_titles is not None:
            ae.require_calling_aet = calling_ae_titles
        self._lock = threading.Lock()
        self.server = ae.start_server(("127.0.0.1", 0), block=False,
                                      evt_handlers=[(evt.EVT_C_STORE, self._store)])
        self.address = Address(host="127.0.0.1", port=self.server.server_address[1],
                               called_ae_title="FAKE_PACS")

    def _store(self, event: evt.Event) -> int:
        with self._lock:
            self.received.append(str(event.request.AffectedSOPInstanceUID))
            return next(self.statuses)

    def stop(self) -> None:
        self.server.shutdown()


@pytest.fixture
def fake_pacs() -> Iterator[list[FakePacs]]:
    made: list[FakePacs] = []
    yield made
    for pacs in made:
        pacs.stop()


@pytest.mark.parametrize(("status", "verdict", "answer"), [
    (0x0000, Verdict.ACKNOWLEDGED, "0x0000"),
    (0xB000, Verdict.ACKNOWLEDGED, "0xB000 warning"),
    (0xB007, Verdict.ACKNOWLEDGED, "0xB007 warning"),
    (0xA700, Verdict.RETRY, "0xA700 out of resources"),
    (0xA7FF, Verdict.RETRY, "0xA7FF out of resources"),
    (0xA900, Verdict.REJECTED, "0xA900 failure"),
    (0xC000, Verdict.REJECTED, "0xC000 failure"),
    (0x0122, Verdict.REJECTED, "0x0122 failure"),
])
def test_the_c_store_status_decides(fake_pacs: list[FakePacs], status: int, verdict: Verdict,
                                    answer: str):
    pacs = FakePacs(statuses=[status, 0x0000])
    fake_pacs.append(pacs)
    sent = documents()
    outcomes = DicomStoreSender().send(pacs.address, sent)
    assert outcomes[0] == Outcome(delivery_id=1, verdict=verdict, answer=answer)
    # The PDF goes only after the image was acknowledged.
    expected = 2 if verdict is Verdict.ACKNOWLEDGED else 1
    assert len(outcomes) == expected
    assert pacs.received == [sop_instance_uid(d) for d in sent][:expected]


def test_a_sop_class_the_pacs_refuses_is_rejected(fake_pacs: list[FakePacs]):
    pacs = FakePacs(statuses=[0x0000], sop_classes=[CTImageStorage])
    fake_pacs.append(pacs)
    outcomes = DicomStoreSender().send(pacs.address, documents())
    assert outcomes == [
        Outcome(delivery_id=1, verdict=Verdict.ACKNOWLEDGED, answer="0x0000"),
        Outcome(delivery_id=2, verdict=Verdict.REJECTED,
                answer="SOP class not accepted by the PACS")]


def test_a_pacs_refusing_every_sop_class_rejects_the_first(fake_pacs: list[FakePacs]):
    pacs = FakePacs(statuses=[], sop_classes=[CTImageStorage])
    fake_pacs.append(pacs)
    outcomes = DicomStoreSender().send(pacs.address, documents()[1:])
    assert outcomes == [Outcome(delivery_id=2, verdict=Verdict.REJECTED,
                                answer="SOP class not accepted by the PACS")]
    assert pacs.received == []


def test_an_association_rejected_means_retry(fake_pacs: list[FakePacs]):
    pacs = FakePacs(statuses=[], calling_ae_titles=["SOMEONE_ELSE"])
    fake_pacs.append(pacs)
    outcomes = DicomStoreSender().send(pacs.address, documents())
    assert len(outcomes) == 1
    assert (outcomes[0].delivery_id, outcomes[0].verdict) == (1, Verdict.RETRY)
    assert outcomes[0].answer == ("association rejected: Rejected Permanent, "
                                  "Calling AE title not recognised")


def test_an_unreachable_pacs_means_one_retry():
    outcomes = DicomStoreSender(timeout=5).send(
        Address(host="127.0.0.1", port=free_port(), called_ae_title="PACS"), documents())
    assert outcomes == [Outcome(delivery_id=1, verdict=Verdict.RETRY,
                                answer="no connection to the PACS")]


def test_a_payload_that_is_not_dicom_is_rejected_unsent(fake_pacs: list[FakePacs]):
    pacs = FakePacs(statuses=[0x0000, 0x0000])
    fake_pacs.append(pacs)
    image, pdf = documents()
    broken = Outgoing(delivery_id=2, document="SR", payload=b"not DICOM at all")
    outcomes = DicomStoreSender().send(pacs.address, [image, broken, pdf])
    assert [(o.delivery_id, o.verdict) for o in outcomes] == [
        (1, Verdict.ACKNOWLEDGED), (2, Verdict.REJECTED)]
    assert pacs.received == [sop_instance_uid(image)]
