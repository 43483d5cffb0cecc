"""Training and conversion of the cloud's recognisers: simulator thumbnails, series classifier, OCR."""
