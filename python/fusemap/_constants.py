"""Keys under which fusemap reads and writes AnnData fields: one table for code and tests."""

VERSION = "0.1.0"
"""The package version (pyproject.toml names the same), kept here so any layer can record it."""

CELL_EMBEDDING = "X_fusemap_cell"
SPATIAL_EMBEDDING = "X_fusemap_spatial"
GENE_EMBEDDING_VARM = "fusemap_gene_embedding"
RUN_RECORD = "fusemap"

SPATIAL_KEY = "spatial"
# squidpy's own keys for the spatial graph (``key_added="spatial"``)
GRAPH_CONNECTIVITIES = "spatial_connectivities"
GRAPH_DISTANCES = "spatial_distances"
GRAPH_UNS = "spatial_neighbors"

SECTION_COLUMN = "section"

# files inside a saved model directory
WEIGHTS_FILE = "weights.pt"
CONFIG_FILE = "config.json"
GENES_FILE = "genes.json"
SECTIONS_FILE = "sections.json"
HISTORY_FILE = "history.json"
CHECKSUMS_FILE = "checksums.json"
CHECKPOINT_FILE = "checkpoint.pt"
MODEL_FORMAT = "fusemap-model"
MODEL_FORMAT_VERSION = 1

DATA_DIR_ENV = "FUSEMAP_DATA_DIR"
DEFAULT_DATA_DIR = "../shared/data"
