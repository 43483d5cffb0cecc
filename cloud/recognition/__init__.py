"""Recognition of thumbnails: series classifier, number OCR and plate rules, voting, and the worker."""
