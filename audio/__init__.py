"""Audio for loacam: Vietnamese text normalisation, TTS engines and the audio pipeline."""
