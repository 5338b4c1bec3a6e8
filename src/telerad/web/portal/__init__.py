"""The hospital portal (requesting physician, technologist): file a request, follow the
site's exams live, mark an acquisition done, cancel, reconcile unmatched studies.

The pages change nothing themselves: filing, marking done, cancelling and reconciling call
the JSON API's own functions (scope, transaction, audit event), so a page and the API are
one path. Reads are audited here. Live updates mirror the worklist: server-sent events
carry only a digest, then the page fetches the new HTML. A page answers an error as a page
(403, 404), never as JSON or a trace; another site's exam is 404, as in the API.

The pages are one module per part — ``listing`` (the site's exams, live), ``request_form``
(filing a request), ``exam`` (one exam, live, and what the site may do with it) — over
``common``, what they share; ``texts`` holds their words, and ``routes`` gathers them all
into the one ``router`` the application includes (from ``routes``: the package itself
imports nothing, since ``web.i18n`` imports ``texts`` and every page imports ``web.i18n``).
"""
