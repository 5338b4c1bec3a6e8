"""The requests of ``telerad demo``'s simulated emergency departments (pure): synthetic French
patients, urgencies, clinical contexts and questions, the protocol a colleague would choose,
and whether the request is left for the newcomer to justify.

No real person is involved: names are drawn from common first and family names, patient IDs
carry the ``DEMO`` prefix.
"""

from __future__ import annotations

import datetime as dt
import random
from dataclasses import dataclass
from typing import TypeVar

from telerad.workflow.requests.service import Contraindications
from telerad.workflow.sites.models import Urgency

FEMALE = ("Marie", "Louise", "Jeanne", "Camille", "Chloé", "Manon", "Léa", "Inès", "Sophie",
          "Nathalie", "Isabelle", "Monique", "Françoise", "Yasmina", "Élodie", "Aurélie",
          "Christine", "Odette", "Paulette", "Sandrine")
MALE = ("Jean", "Pierre", "Louis", "Lucas", "Hugo", "Julien", "Nicolas", "Thomas", "Karim",
        "Mehdi", "Philippe", "Alain", "Michel", "Bernard", "Jacques", "Antoine", "Mathieu",
        "Gérard", "Raymond", "Yannick")
FAMILY = ("MARTIN", "BERNARD", "DUBOIS", "THOMAS", "ROBERT", "RICHARD", "PETIT", "DURAND",
          "LEROY", "MOREAU", "SIMON", "LAURENT", "LEFEBVRE", "MICHEL", "GARCIA", "DAVID",
          "BERTRAND", "ROUX", "VINCENT", "FOURNIER", "MOREL", "GIRARD", "ANDRÉ", "MERCIER",
          "BLANC", "GUERIN", "BOYER", "GARNIER", "CHEVALIER", "FABRE", "SANCHEZ", "ROUSSEL",
          "PUJOL", "COMBES", "ESTÈVE", "SABATIER", "AZÉMA", "CATHALA", "BOUSQUET", "VIDAL")


@dataclass(frozen=True, kw_only=True)
class Indication:
    """A clinical situation: what the emergency doctor writes, the ages it happens at, and
    the urgencies it goes with."""

    context: str
    question: str
    ages: tuple[int, int]
    urgencies: frozenset[Urgency]


@dataclass(frozen=True, kw_only=True)
class ExamKind:
    """An exam asked for, the protocol a radiologist would validate it with, its situations."""

    protocol: str
    modality: str
    asked: str
    contrast: bool
    indications: tuple[Indication, ...]


EMERGENCY = frozenset({Urgency.STROKE_ALERT, Urgency.LIFE_THREATENING, Urgency.URGENT})
PLANNED = frozenset({Urgency.SCHEDULED})


def _i(context: str, question: str, ages: tuple[int, int],
       urgencies: frozenset[Urgency] = EMERGENCY) -> Indication:
    return Indication(context=context, question=question, ages=ages, urgencies=urgencies)


EXAMS = {
    "CT_HEAD": ExamKind(protocol="CT_HEAD", modality="CT", asked="Scanner cérébral sans injection",
                        contrast=False, indications=(
        _i("Chute de sa hauteur sous anticoagulant oral, plaie du cuir chevelu",
           "Hématome intracrânien ?", (70, 95)),
        _i("Céphalée brutale en coup de tonnerre à l'effort", "Hémorragie méningée ?", (25, 70)),
        _i("Confusion fébrile d'apparition récente", "Lésion intracrânienne ?", (65, 95)),
        _i("Traumatisme crânien avec perte de connaissance initiale, GCS 14",
           "Lésion traumatique intracrânienne ?", (16, 80)),
        _i("Céphalées chroniques d'aggravation progressive, examen neurologique normal",
           "Processus expansif ? hydrocéphalie ?", (30, 80), PLANNED),
        _i("Troubles cognitifs d'installation progressive, bilan gériatrique",
           "Atrophie ? hématome sous-dural chronique ?", (70, 95), PLANNED),
    )),
    "CT_STROKE": ExamKind(protocol="CT_STROKE", modality="CT", contrast=True,
                          asked="Scanner AVC : cérébral, angioscanner TSA-Willis, perfusion",
                          indications=(
        _i("Aphasie et hémiplégie droite depuis 40 min, NIHSS 14, alerte thrombolyse",
           "AVC ischémique ? occlusion proximale ? thrombolyse, thrombectomie ?", (50, 92)),
        _i("Déficit brachio-facial gauche, début connu il y a 1 h 30, NIHSS 8",
           "AVC ischémique ou hémorragique ? occlusion ?", (45, 90)),
        _i("Troubles de la vigilance et hémianopsie, dernière fois vu normal il y a 3 h",
           "AVC ? thrombectomie possible ?", (55, 95)),
    )),
    "CT_CTPA": ExamKind(protocol="CT_CTPA", modality="CT", contrast=True,
                        asked="Angioscanner thoracique", indications=(
        _i("Dyspnée aiguë, tachycardie à 118, D-dimères à 2400 ng/mL",
           "Embolie pulmonaire ?", (30, 88)),
        _i("Douleur thoracique pleurale à J5 d'une prothèse de hanche",
           "Embolie pulmonaire ?", (55, 90)),
        _i("Hémoptysie et désaturation à 89 %", "Embolie pulmonaire ? autre cause ?", (40, 85)),
    )),
    "CT_ABDO_PELVIS": ExamKind(protocol="CT_ABDO_PELVIS", modality="CT", contrast=True,
                               asked="Scanner abdomino-pelvien injecté", indications=(
        _i("Douleur de la fosse iliaque droite, fièvre à 38,6 °C, CRP 120",
           "Appendicite ? abcès ?", (12, 60)),
        _i("Douleurs abdominales diffuses, arrêt des matières et des gaz depuis 48 h",
           "Occlusion ? niveau et cause ?", (45, 90)),
        _i("Douleur de l'hypochondre droit fébrile, Murphy positif",
           "Cholécystite ? complication ?", (30, 85)),
        _i("Douleur lombaire gauche brutale, hématurie", "Colique néphrétique compliquée ?",
           (20, 70)),
        _i("Amaigrissement de 8 kg en trois mois, anémie ferriprive",
           "Néoplasie digestive ? bilan d'extension ?", (50, 88), PLANNED),
        _i("Douleurs de l'hypochondre droit récidivantes, cholestase biologique",
           "Obstacle biliaire ? lésion hépatique ?", (35, 85), PLANNED),
    )),
    "CT_TRAUMA": ExamKind(protocol="CT_TRAUMA", modality="CT", contrast=True,
                          asked="Body-scanner (traumatisé sévère)", indications=(
        _i("Accident de moto à haute cinétique, patient intubé au SMUR",
           "Bilan lésionnel complet ?", (17, 55)),
        _i("Chute d'un échafaudage d'environ 4 mètres", "Lésions traumatiques ?", (20, 65)),
        _i("Piéton renversé par une voiture, instable à l'arrivée",
           "Hémorragie active ? lésions viscérales ?", (10, 90)),
    )),
    "MR_BRAIN": ExamKind(protocol="MR_BRAIN", modality="MR", asked="IRM cérébrale",
                         contrast=True, indications=(
        _i("Céphalées progressives inhabituelles depuis 3 semaines, œdème papillaire",
           "Processus expansif intracrânien ?", (20, 80), EMERGENCY | PLANNED),
        _i("Baisse d'acuité visuelle douloureuse de l'œil gauche", "Névrite optique ? SEP ?",
           (18, 45), EMERGENCY | PLANNED),
        _i("Vertiges et ataxie apparus ce matin, scanner normal",
           "AVC de la fosse postérieure ?", (40, 85)),
    )),
    "MR_SPINE": ExamKind(protocol="MR_SPINE", modality="MR", asked="IRM du rachis lombaire",
                         contrast=False, indications=(
        _i("Lombosciatique L5 droite hyperalgique avec déficit moteur 3/5",
           "Hernie discale compressive ?", (25, 70)),
        _i("Rachialgies dorsales fébriles, CRP 90", "Spondylodiscite ?", (40, 85),
           EMERGENCY | PLANNED),
        _i("Paraparésie d'installation rapide et troubles sphinctériens",
           "Compression médullaire ? syndrome de la queue de cheval ?", (35, 85)),
        _i("Lombalgies chroniques et radiculalgie L5 gauche rebelle au traitement",
           "Conflit disco-radiculaire ?", (30, 75), PLANNED),
    )),
}

#: (urgency, weight, protocols and weights) for CT at night, MRI by day. Stroke alerts are
#: more frequent than in real life so that a few minutes of demo show one.
MIX: dict[str, tuple[tuple[Urgency, int, tuple[tuple[str, int], ...]], ...]] = {
    "CT": (
        (Urgency.STROKE_ALERT, 15, (("CT_STROKE", 1),)),
        (Urgency.LIFE_THREATENING, 20, (("CT_TRAUMA", 35), ("CT_CTPA", 30), ("CT_HEAD", 35))),
        (Urgency.URGENT, 45, (("CT_HEAD", 45), ("CT_ABDO_PELVIS", 35), ("CT_CTPA", 20))),
        (Urgency.SCHEDULED, 20, (("CT_HEAD", 50), ("CT_ABDO_PELVIS", 50))),
    ),
    "MR": (
        (Urgency.LIFE_THREATENING, 10, (("MR_SPINE", 1),)),
        (Urgency.URGENT, 50, (("MR_BRAIN", 55), ("MR_SPINE", 45))),
        (Urgency.SCHEDULED, 40, (("MR_BRAIN", 50), ("MR_SPINE", 50))),
    ),
}
#: Share of requests a simulated colleague leaves for the newcomer's radiologist account.
LEFT_FOR_YOU = 0.3
#: Share of the colleague's decisions on non-urgent requests that are refusals.
REFUSED = 0.1
T = TypeVar("T")
REFUSAL_REASONS = ("Indication non retenue en urgence : examen à programmer",
                   "Pas d'argument pour une lésion aiguë : surveillance clinique proposée",
                   "Examen déjà réalisé il y a 48 h sans élément nouveau")


@dataclass(frozen=True, kw_only=True)
class Case:
    """One drawn request, and what becomes of it."""

    patient_id: str
    family_name: str
    given_name: str
    sex: str
    birth_date: dt.date
    urgency: Urgency
    exam: ExamKind
    indication: Indication
    contraindications: Contraindications
    #: Nobody but the newcomer decides it (every MRI: the demo's scanners make only CT).
    left_for_you: bool
    refusal_reason: str = ""

    @property
    def patient_name(self) -> str:
        """DICOM PN (PS3.5 §6.2.1): FAMILY^Given."""
        return f"{self.family_name}^{self.given_name}"

    def age_on(self, day: dt.date) -> int:
        years = day.year - self.birth_date.year
        return years - ((day.month, day.day) < (self.birth_date.month, self.birth_date.day))


def _weighted(rng: random.Random, choices: tuple[tuple[T, int], ...]) -> T:
    return rng.choices([c for c, _ in choices], [w for _, w in choices])[0]


def draw(rng: random.Random, *, modality: str, today: dt.date) -> Case:
    """A request for ``modality`` ("CT" or "MR") as an emergency department files it."""
    urgency, protocols = _weighted(rng, tuple(((u, p), w) for u, w, p in MIX[modality]))
    exam = EXAMS[_weighted(rng, protocols)]
    indication = rng.choice([i for i in exam.indications if urgency in i.urgencies]
                            or exam.indications)
    sex = rng.choice("FM")
    age = rng.randint(*indication.ages)
    birth = today - dt.timedelta(days=age * 365 + rng.randint(30, 330))
    pregnancy = "no"
    if sex == "F" and 15 <= age <= 48:
        pregnancy = rng.choice(("no", "no", "no", "possible"))
    contraindications = Contraindications(
        pregnancy=pregnancy,
        egfr=float(rng.randint(35 if age > 70 else 60, 110)) if exam.contrast else None,
        contrast_allergy=exam.contrast and rng.random() < 0.05)
    refuse = (urgency in (Urgency.URGENT, Urgency.SCHEDULED) and rng.random() < REFUSED)
    return Case(
        patient_id=f"DEMO{rng.randrange(10**7):07d}", family_name=rng.choice(FAMILY),
        given_name=rng.choice(FEMALE if sex == "F" else MALE), sex=sex, birth_date=birth,
        urgency=urgency, exam=exam, indication=indication, contraindications=contraindications,
        left_for_you=modality != "CT" or rng.random() < LEFT_FOR_YOU,
        refusal_reason=rng.choice(REFUSAL_REASONS) if refuse else "")
