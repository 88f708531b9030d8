"""The bare Flask app the web benchmarks compare against: one small HTML page, no database,
no session, served by the same gunicorn with the same flags (``bench.bare:app``)."""

from __future__ import annotations

from flask import Flask

app = Flask(__name__)

PAGE = "<!doctype html><html lang=zh-CN><meta charset=utf-8><title>bare</title><p>天津市高职升本网上报名</p></html>"


@app.get("/")
def home() -> str:
    return PAGE
