"""Models: the CNN encoder, the attention LSTM decoder, and the captioner that joins them."""
