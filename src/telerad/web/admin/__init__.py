"""Administration pages (coordinator, site manager, admin): sites, devices, contracts,
teams, radiologists, the roster's week, users, the audit trail.

The pages keep no rules of their own: they call the services the JSON API calls
(``workflow.sites``, ``workflow.roster``, ``auth.accounts``), each change in one transaction
with its audit event. Who may do what: ``roster:manage`` (coordinator, admin) keeps the
set-up; ``sites:read`` (site manager) sees their own sites' devices and contracts;
``users:manage`` and ``audit:read`` (admin) keep the accounts and search the trail.

A page answers an error as a page: not signed in, the sign-in page; not allowed, 403 with
a message; a form without its CSRF token, 403 "page expired". Bad input in a form is shown
next to that form, the form refilled, and nothing is changed (status 400, or 409 for a
conflict with what exists).

The pages are one module per section of the menu — ``setup`` (sites, devices, contracts),
``people`` (teams, radiologists), ``roster`` (the week), ``users``, ``audit`` — over
``common``, what they share; ``texts`` holds their words, and ``routes`` gathers them all
into the one ``router`` the application includes (from ``routes``: the package itself
imports nothing, since ``web.i18n`` imports ``texts`` and every page imports ``web.i18n``).
"""
