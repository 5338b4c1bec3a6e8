"""A hospital whose reports are signed in this process, for the tests and benchmarks of
delivery: a site with a RIS and a PACS as its endpoints, a radiologist, exams in reading."""

from __future__ import annotations

from pydicom.uid import generate_uid
from sqlalchemy import select

from telerad.auth.models import Role
from telerad.auth.users import create_user
from telerad.db import transaction
from telerad.delivery import service as delivery
from telerad.delivery.models import Delivery
from telerad.reporting import service as reports
from telerad.reporting.models import VersionKind
from telerad.runtime import Runtime
from telerad.workflow.exams.models import Exam, ExamState
from telerad.workflow.roster.service import add_radiologist
from telerad.workflow.sites.service import add_site


class Hospital:
    """A site with a RIS and a PACS as its endpoints, and a radiologist reading its exams;
    reports are signed from this process, as the web application would."""

    def __init__(self, runtime: Runtime, *, ris_port: int, pacs_port: int) -> None:
        self.runtime = runtime
        now = runtime.clock.now()
        with transaction(runtime.sessions) as session:
            self.site_id = add_site(session, name="CH Carcassonne", ae_titles=["CT_CARCA"],
                                    now=now).id
            delivery.add_endpoint(session, site_id=self.site_id, channel="hl7_mllp",
                                  name="RIS", host="127.0.0.1", port=ris_port,
                                  receiving_application="RIS", receiving_facility="CHC",
                                  now=now)
            delivery.add_endpoint(session, site_id=self.site_id, channel="dicom_store",
                                  name="PACS", host="127.0.0.1", port=pacs_port,
                                  called_ae_title="ORTHANC", now=now)
            user = create_user(session, username="dr_alice", display_name="Dr Alice Martin",
                               role=Role.RADIOLOGIST, password="x" * 12, site_ids=[], now=now)
            radiologist = add_radiologist(session, name="Dr Alice Martin", username="dr_alice",
                                          site_ids=[self.site_id], subspecialties=[], now=now)
            self.author = reports.Author(user_id=user.id, radiologist_id=radiologist.id,
                                         name="MARTIN^Alice^^Dr")

    def exam_in_reading(self, n: int) -> int:
        now = self.runtime.clock.now()
        with transaction(self.runtime.sessions) as session:
            exam = Exam(site_id=self.site_id, state=ExamState.IN_READING, urgency="urgent",
                        urgency_rank=2, modality="CT", patient_id=f"PAT{n:03d}",
                        patient_name=f"DUPONT^Marie{n}", patient_birth_date="19580312",
                        patient_sex="F", requesting_physician="GARNIER^Hélène",
                        clinical_question="Hémorragie intracrânienne ?",
                        exam_asked="Scanner cérébral", protocol_code="CT_HEAD",
                        accession_number=f"ACC{n:05d}", study_instance_uid=generate_uid(),
                        first_image_at=now, reader_id=self.author.radiologist_id,
                        claimed_at=now, created_at=now)
            session.add(exam)
            session.flush()
            reports.start(session, exam, author=self.author, now=now)
            return exam.id

    def release(self, exam_id: int, kind: VersionKind, addendum: str = "") -> None:
        now = self.runtime.clock.now()
        with transaction(self.runtime.sessions) as session:
            exam = session.get(Exam, exam_id)
            assert exam is not None
            report = reports.report_of(session, exam)
            assert report is not None
            if addendum:
                reports.save_draft(session, exam, report, content={"addendum": addendum},
                                   base_revision=report.revision, author=self.author, now=now)
            reports.release(session, exam, report, kind=kind, author=self.author, now=now)

    def deliveries(self) -> list[Delivery]:
        with transaction(self.runtime.sessions, readonly=True) as session:
            rows = list(session.scalars(select(Delivery).order_by(Delivery.id)))
            session.expunge_all()
            return rows
