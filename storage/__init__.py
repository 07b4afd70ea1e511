"""State keys and commitment of write sets (state roots)."""
