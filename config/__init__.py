"""Settings, the constitutional preamble and other data every layer reads; imports nothing else of ftm."""
