"""The words of the viewer's page, in French (the default) and English."""

from __future__ import annotations

FR: dict[str, str] = {
    "open_in_viewer": "Ouvrir dans la visionneuse",
    "viewer_missing_title": "Visionneuse non installée",
    "viewer_missing": "La visionneuse d'images (OHIF) n'est pas installée sur ce serveur.",
    "viewer_missing_fix": "Pour l'installer, lancez depuis le dossier de telerad :",
    "viewer_missing_dir": "Ou indiquez son dossier dans la variable TELERAD_VIEWER_DIR.",
}

EN: dict[str, str] = {
    "open_in_viewer": "Open in viewer",
    "viewer_missing_title": "Viewer not installed",
    "viewer_missing": "The image viewer (OHIF) is not installed on this server.",
    "viewer_missing_fix": "To install it, run from telerad's folder:",
    "viewer_missing_dir": "Or give its folder in the TELERAD_VIEWER_DIR variable.",
}
