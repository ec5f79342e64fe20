"""Published distilled sets and published numbers: importers for other code bases' files, their
layouts, re-evaluation under each source's protocol, and published tables beside ours.
"""
