"""Which presentation contexts the gateway accepts (PS3.8 §7.1.1.13, PS3.7 §D.3.2).

Verification and every storage SOP class (standard, retired or private) in every transfer
syntax whose data set header pydicom can read, stored as received; the Modality Worklist
FIND SOP class (PS3.4 §K.4) in the uncompressed syntaxes of its identifiers.
"""

from __future__ import annotations

from pydicom import uid as pydicom_uid
from pynetdicom.pdu_primitives import A_ASSOCIATE, SCP_SCU_RoleSelectionNegotiation
from pynetdicom.presentation import PresentationContext, build_context, negotiate_as_acceptor

from telerad.gateway import c_find

VERIFICATION_SOP_CLASS = "1.2.840.10008.1.1"
#: Transfer syntaxes we accept and store as received (PS3.5 Annex A, §10): every one whose
#: data set header pydicom can read — uncompressed, deflated, JPEG, JPEG-LS, JPEG 2000,
#: HTJ2K, RLE, and the encapsulated video ones.
TRANSFER_SYNTAXES: list[str | pydicom_uid.UID] = [
    pydicom_uid.ExplicitVRLittleEndian,
    pydicom_uid.ImplicitVRLittleEndian,
    pydicom_uid.DeflatedExplicitVRLittleEndian,
    pydicom_uid.ExplicitVRBigEndian,
    *[ts for ts in pydicom_uid.AllTransferSyntaxes if pydicom_uid.UID(ts).is_compressed],
]
#: Storage SOP Classes live under this root (PS3.4 Annex B.5; PS3.6 Annex A), retired and
#: trial ones included: older modalities still send them.
_STORAGE_ROOT = "1.2.840.10008.5.1.4.1.1."


def is_storage_sop_class(uid: str) -> bool:
    """Whether ``uid`` names a storage SOP class we accept: standard (current, retired or
    not yet known to our dictionaries) or private."""
    value = pydicom_uid.UID(uid)
    return value.startswith(_STORAGE_ROOT) or value.is_private or (
        value.type == "SOP Class" and "Storage" in value.name
    )


def accepted_contexts(
    rq: A_ASSOCIATE,
) -> tuple[list[PresentationContext], list[SCP_SCU_RoleSelectionNegotiation]]:
    """Accept Verification and every storage (or private) SOP class in our syntaxes, and
    the Modality Worklist FIND SOP class (PS3.4 §K.4) in uncompressed ones."""
    supported = []
    for cx in rq.presentation_context_definition_list:
        abstract = pydicom_uid.UID(str(cx.abstract_syntax))
        if abstract == VERIFICATION_SOP_CLASS or is_storage_sop_class(abstract):
            supported.append(build_context(abstract, TRANSFER_SYNTAXES))
        elif abstract in c_find.FIND_SOP_CLASSES:
            supported.append(build_context(abstract, c_find.FIND_TRANSFER_SYNTAXES))
    roles = {
        pydicom_uid.UID(str(item.sop_class_uid)): (item.scu_role, item.scp_role)
        for item in rq.user_information
        if isinstance(item, SCP_SCU_RoleSelectionNegotiation)
    }
    return negotiate_as_acceptor(rq.presentation_context_definition_list, supported, roles or None)
