"""The library's version, in one place (setup.cfg reads it from here)."""

VERSION = "0.1.0"
#: What every message's ``context.library`` says.
LIBRARY = {"name": "mparticle-analytics-python", "version": VERSION}
