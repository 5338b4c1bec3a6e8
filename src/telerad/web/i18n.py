"""The pages' words in French (the default: French sites) and English, chosen from the
browser's Accept-Language."""

from __future__ import annotations

from fastapi import Request

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
    },
}


def language(request: Request) -> str:
    """The first of the browser's languages we speak; French otherwise."""
    for part in request.headers.get("accept-language", "").split(","):
        code = part.split(";")[0].strip().lower()[:2]
        if code in LANGUAGES:
            return code
    return "fr"
