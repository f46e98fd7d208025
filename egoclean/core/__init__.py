"""Foundations every stage uses: errors, ids, defaults, file layout, atomic writes, remote roots."""
