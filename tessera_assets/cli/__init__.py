"""``tessera-assets``: the terminal front end (demo, AOIs, planning, materialisation, status)."""
