"""The web side: the editors' live preview (:mod:`digest.web.preview`) and the subscribers'
endpoints, one-click unsubscribe and the archive (:mod:`digest.web.serve`). Plain WSGI on the
standard library's server, bound to 127.0.0.1 unless told otherwise; only this package knows HTTP."""
