"""The example app's handlers; each module sits next to the manifest that names it."""
