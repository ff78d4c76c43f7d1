"""runtimes/engine"""
