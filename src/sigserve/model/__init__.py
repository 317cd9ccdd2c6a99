"""What a model's MLmodel file says: flavors and metadata (`mlmodel.py`), the signature
schema (`schema.py`). Every layer reads it; it imports only the base modules.
"""
