"""Benchmark and load tools (`reelscope bench`, `reelscope loadtest`, GPU and VLM benches).

They sit on top of everything and nothing in the runtime imports them.
"""
