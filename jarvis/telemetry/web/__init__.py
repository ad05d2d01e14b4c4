"""The status page: server-rendered HTML on the daemon's HTTP server.

`page.StatusPage` adds ``GET /`` and its forms to the `HttpServer`; `sessions`
holds logins and their CSRF tokens; `templates/` and `static/` are served from
the package (no build step, no CDN: the page works with no internet).
"""
