"""The HTTP server and web page: router, JSON API, media, auth, dashboard sink, history, analyze, feedback."""
