"""The Comfy API v2 (Comfy-Org's versioned job API): its error envelope, jobs over ordinary runs, assets."""
