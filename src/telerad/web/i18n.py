"""The pages' words in French (the default: French sites) and English, chosen from the
browser's Accept-Language."""

from __future__ import annotations

from fastapi import Request

from telerad.web import admin_texts, portal_texts, viewer_texts

LANGUAGES = ("fr", "en")

TEXTS: dict[str, dict[str, str]] = {
    "fr": {
        "sign_in": "Connexion",
        "username": "Identifiant",
        "password": "Mot de passe",
        "code": "Code de l'application d'authentification",
        "code_hint": "Six chiffres, si votre compte a un second facteur.",
        "sign_in_button": "Se connecter",
        "wrong": "Identifiant, mot de passe ou code incorrect.",
        "second_factor_required": "Saisissez le code de votre application d'authentification.",
        "account_locked": "Trop d'échecs : compte bloqué 15 minutes.",
        "csrf": "La page a expiré : rechargez-la et recommencez.",
        "signed_in_as": "Connecté en tant que",
        "role": "Rôle",
        "sites": "Sites",
        "sign_out": "Se déconnecter",
        "sign_out_everywhere": "Se déconnecter de tous les appareils",
        "second_factor": "Second facteur",
        "second_factor_on": "Le second facteur est activé.",
        "second_factor_off": "Le second facteur n'est pas activé.",
        "enrol": "Configurer une application d'authentification",
        "enrol_intro": "Scannez ce QR code avec votre application "
                       "(ou saisissez la clé), puis entrez le premier code affiché.",
        "secret": "Clé :",
        "confirm": "Confirmer",
        "enrolled": "Second facteur activé : il sera demandé à chaque connexion.",
        "bad_code": "Ce code ne correspond pas : vérifiez l'heure du téléphone et réessayez.",
        "api_docs": "Documentation de l'API",
        "skip": "Aller au contenu",
        "worklist": "Liste de travail",
        "worklist_empty": "Rien à lire pour l'instant.",
        "live": "Mise à jour en direct",
        "kind_reading": "En lecture",
        "kind_ready": "À lire",
        "kind_justify": "À valider",
        "urgency_stroke_alert": "Alerte AVC",
        "urgency_life_threatening": "Urgence vitale",
        "urgency_urgent": "Urgent",
        "urgency_scheduled": "Programmé",
        "time_left": "Temps restant",
        "min": "min",
        "open": "Ouvrir",
        "claim": "Prendre",
        "release": "Rendre",
        "site": "Site",
        "modality": "Modalité",
        "all": "Tous",
        "filter": "Filtrer",
        "exam": "Examen",
        "patient": "Patient",
        "clinical_context": "Contexte clinique",
        "clinical_question": "Question clinique",
        "exam_asked": "Examen demandé",
        "protocol": "Protocole",
        "state": "État",
        "contraindications": "Contre-indications",
        "timeline": "Historique",
        "claimed_by_other": "Un autre radiologue a pris cet examen.",
        "not_offered": "Cet examen ne vous est pas proposé.",
        "new_stroke_alert": "Nouvelle alerte AVC",
        "main_menu": "Menu principal",
        "justification": "Justification de la demande",
        "decision_accept": "Accepter avec ce protocole",
        "decision_change": "Proposer un autre examen",
        "decision_refuse": "Refuser",
        "exam_instead": "Examen proposé à la place (si autre examen)",
        "reason": "Motif (obligatoire pour un refus)",
        "record_decision": "Enregistrer la décision",
        "must_enrol": "Votre rôle exige un second facteur : configurez votre application "
                      "d'authentification pour commencer à travailler.",
        "home": "Accueil",
        "portal": "Portail de l'hôpital",
        "administration": "Administration",
    },
    "en": {
        "sign_in": "Sign in",
        "username": "Username",
        "password": "Password",
        "code": "Authenticator app code",
        "code_hint": "Six digits, if your account has a second factor.",
        "sign_in_button": "Sign in",
        "wrong": "Wrong username, password or code.",
        "second_factor_required": "Enter the code of your authenticator app.",
        "account_locked": "Too many failures: account locked for 15 minutes.",
        "csrf": "The page expired: reload it and try again.",
        "signed_in_as": "Signed in as",
        "role": "Role",
        "sites": "Sites",
        "sign_out": "Sign out",
        "sign_out_everywhere": "Sign out on every device",
        "second_factor": "Second factor",
        "second_factor_on": "The second factor is on.",
        "second_factor_off": "The second factor is off.",
        "enrol": "Set up an authenticator app",
        "enrol_intro": "Scan this QR code with your app (or type the key), then enter the "
                       "first code it shows.",
        "secret": "Key:",
        "confirm": "Confirm",
        "enrolled": "Second factor on: it will be asked at every sign-in.",
        "bad_code": "This code does not match: check the phone's clock and try again.",
        "api_docs": "API documentation",
        "skip": "Skip to content",
        "worklist": "Worklist",
        "worklist_empty": "Nothing to read for now.",
        "live": "Live updates",
        "kind_reading": "Reading",
        "kind_ready": "To read",
        "kind_justify": "To justify",
        "urgency_stroke_alert": "Stroke alert",
        "urgency_life_threatening": "Life-threatening",
        "urgency_urgent": "Urgent",
        "urgency_scheduled": "Scheduled",
        "time_left": "Time left",
        "min": "min",
        "open": "Open",
        "claim": "Claim",
        "release": "Release",
        "site": "Site",
        "modality": "Modality",
        "all": "All",
        "filter": "Filter",
        "exam": "Exam",
        "patient": "Patient",
        "clinical_context": "Clinical context",
        "clinical_question": "Clinical question",
        "exam_asked": "Exam asked",
        "protocol": "Protocol",
        "state": "State",
        "contraindications": "Contraindications",
        "timeline": "Timeline",
        "claimed_by_other": "Another radiologist claimed this exam.",
        "not_offered": "This exam is not offered to you.",
        "new_stroke_alert": "New stroke alert",
        "main_menu": "Main menu",
        "justification": "Justification of the request",
        "decision_accept": "Accept with this protocol",
        "decision_change": "Propose another exam",
        "decision_refuse": "Refuse",
        "exam_instead": "Exam proposed instead (for another exam)",
        "reason": "Reason (required to refuse)",
        "record_decision": "Record the decision",
        "must_enrol": "Your role needs a second factor: set up your authenticator app to "
                      "start working.",
        "home": "Home",
        "portal": "Hospital portal",
        "administration": "Administration",
    },
}


# Each group of pages keeps its words in its own module (one per helper, no merge fights).
for _part in (portal_texts, admin_texts, viewer_texts):
    TEXTS["fr"].update(_part.FR)
    TEXTS["en"].update(_part.EN)


def language(request: Request) -> str:
    """The first of the browser's languages we speak; French otherwise."""
    for part in request.headers.get("accept-language", "").split(","):
        code = part.split(";")[0].strip().lower()[:2]
        if code in LANGUAGES:
            return code
    return "fr"
