"""Serve the app: ``python serve.py [streamlit options]`` is ``streamlit run app.py [options]`` with torch, genlab
and the pages' shared module imported before the server starts. Under plain ``streamlit run`` the first visitor
waits for those imports (about 3 s on a 2-core CPU); here they are done before the server answers its health
check, as a pre-forking web server preloads its application (docs/benchmarks.md, "Cold start")."""

import logging
import sys
from pathlib import Path

from streamlit.web.cli import main

# Importing the pages' module defines its cached functions before Streamlit's runtime exists, and Streamlit
# warns of that once per function; their caches are made, in the runtime, at their first call all the same.
_cache_log = logging.getLogger("streamlit.runtime.caching.cache_data_api")
_level, _cache_log.level = _cache_log.level, logging.ERROR
import app_pages.common  # noqa: E402, F401 - the heavy imports, once, in the server's process

_cache_log.setLevel(_level)

if __name__ == "__main__":
    main(["run", str(Path(__file__).with_name("app.py")), *sys.argv[1:]], prog_name="streamlit")
