"""Google Cloud Run: services and revisions through google-cloud-run v2 over REST.

Only this subpackage imports the Google client libraries.
"""
