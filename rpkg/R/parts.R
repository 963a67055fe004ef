# The exchange form shared with Python (fusemap.io): an object as "parts", i.e. typed vectors with
# separate missing-value masks, so no NA crosses between the languages. Arrays travel in a wire form
# (raw little-endian bytes or character vectors) because Debian's reticulate 1.28 cannot convert
# NumPy 2 arrays. Python's fusemap.io.r_exchange runs these same functions through rpy2.

.WIRE <- "__nd__"

# Encode every atomic vector inside x (lists are walked) for Python's fusemap.io.from_wire().
.wire <- function(x) {
    if (is.null(x)) {
        return(NULL)
    }
    if (is.list(x)) {
        return(lapply(x, .wire))
    }
    shape <- if (is.null(dim(x))) length(x) else dim(x)
    if (length(shape) == 2L) {
        x <- t(x)  # Python reads row-major
    }
    v <- as.vector(x)
    if (is.character(v)) {
        return(list(`__nd__` = "str", data = as.list(v), shape = as.list(shape)))
    }
    if (is.logical(v)) {
        return(list(`__nd__` = "b1", data = writeBin(as.integer(v), raw(), size = 1L),
                    shape = as.list(shape)))
    }
    if (is.integer(v)) {
        return(list(`__nd__` = "i4", data = writeBin(v, raw(), size = 4L, endian = "little"),
                    shape = as.list(shape)))
    }
    list(`__nd__` = "f8", data = writeBin(as.numeric(v), raw(), size = 8L, endian = "little"),
         shape = as.list(shape))
}

# Decode what fusemap.io.to_wire() sent.
.unwire <- function(x) {
    if (!is.list(x)) {
        return(x)
    }
    if (!is.null(x[[.WIRE]])) {
        shape <- as.integer(unlist(x$shape))
        n <- prod(shape)
        v <- switch(x[[.WIRE]],
            str = as.character(unlist(x$data)),
            b1 = as.logical(readBin(x$data, "integer", n = n, size = 1L, signed = FALSE)),
            i4 = readBin(x$data, "integer", n = n, size = 4L, endian = "little"),
            f8 = readBin(x$data, "double", n = n, size = 8L, endian = "little"))
        if (length(shape) == 2L) {
            v <- matrix(v, nrow = shape[1], ncol = shape[2], byrow = TRUE)
        }
        return(v)
    }
    lapply(x, .unwire)
}

# -- parts -> SpatialExperiment -------------------------------------------------------------------------

.matrix_from_part <- function(p, n_obs, n_vars) {
    if (identical(p$kind, "sparse")) {
        methods::new("dgCMatrix", i = as.integer(p$indices), p = as.integer(p$indptr),
                     x = as.numeric(p$data), Dim = c(as.integer(n_vars), as.integer(n_obs)))
    } else {
        matrix(as.numeric(p$values), nrow = n_vars, ncol = n_obs)
    }
}

.column_from_part <- function(p) {
    na <- as.logical(p$na)
    switch(p$kind,
        factor = {
            codes <- as.integer(p$codes)
            lev <- as.character(p$levels)
            factor(lev[ifelse(codes < 0L, NA_integer_, codes + 1L)], levels = lev,
                   ordered = isTRUE(as.logical(p$ordered)))
        },
        double = as.numeric(p$values),
        logical = {
            v <- as.logical(p$values)
            v[na] <- NA
            v
        },
        integer = {
            v <- as.integer(p$values)
            v[na] <- NA
            v
        },
        character = {
            v <- as.character(p$values)
            v[na] <- NA
            v
        })
}

.frame_from_part <- function(p, rn, n = length(rn)) {
    cols <- lapply(p$columns, .column_from_part)
    names(cols) <- as.character(p$names)
    if (is.null(rn) && length(cols)) n <- length(cols[[1]])
    out <- methods::new("DFrame", nrows = as.integer(n))
    if (!is.null(rn)) rownames(out) <- rn
    for (nm in names(cols)) {
        out[[nm]] <- cols[[nm]]
    }
    out
}

.emb_from_part <- function(p, n) {
    matrix(as.numeric(p$values), nrow = n, ncol = as.integer(p$ncol), byrow = TRUE)
}

.parts_to_spe <- function(p) {
    n_obs <- as.integer(p$n_obs)
    n_vars <- as.integer(p$n_vars)
    cn <- as.character(p$obs_names)
    rn <- as.character(p$var_names)
    assays <- lapply(p$assays, .matrix_from_part, n_obs = n_obs, n_vars = n_vars)
    names(assays) <- as.character(p$assay_names)
    assays <- lapply(assays, function(m) {
        dimnames(m) <- list(rn, cn)
        m
    })
    coords <- NULL
    if (!is.null(p$spatial)) {
        coords <- .emb_from_part(p$spatial, n_obs)
        colnames(coords) <- as.character(p$spatial_names)
    }
    spe <- SpatialExperiment::SpatialExperiment(
        assays = assays, colData = .frame_from_part(p$obs, cn),
        rowData = .frame_from_part(p$var, rn), spatialCoords = coords,
        metadata = if (is.list(p$uns)) p$uns else list())
    rdims <- lapply(p$reduced, .emb_from_part, n = n_obs)
    names(rdims) <- as.character(p$reduced_names)
    if (length(rdims)) {
        SingleCellExperiment::reducedDims(spe) <- rdims
    }
    spe
}

# -- SpatialExperiment -> parts -------------------------------------------------------------------------

.column_to_part <- function(v) {
    if (is.factor(v)) {
        return(list(kind = "factor", codes = ifelse(is.na(v), -1L, as.integer(v) - 1L),
                    levels = levels(v), ordered = is.ordered(v)))
    }
    if (!is.atomic(v) || !is.null(dim(v))) {
        return(NULL)
    }
    na <- is.na(v)
    if (is.logical(v)) {
        return(list(kind = "logical", values = ifelse(na, FALSE, v), na = na))
    }
    if (is.integer(v)) {
        return(list(kind = "integer", values = ifelse(na, 0L, v), na = na))
    }
    if (is.numeric(v)) {
        return(list(kind = "double", values = as.numeric(v)))
    }
    v <- as.character(v)
    na <- is.na(v)
    list(kind = "character", values = ifelse(na, "", v), na = na)
}

.frame_to_part <- function(df, where) {
    cols <- list()
    nm <- character(0)
    dropped <- character(0)
    for (name in colnames(df)) {
        part <- .column_to_part(df[[name]])
        if (is.null(part)) {
            dropped <- c(dropped, paste0(where, "$", name))
        } else {
            cols[[length(cols) + 1L]] <- part
            nm <- c(nm, name)
        }
    }
    list(part = list(names = nm, columns = cols), dropped = dropped)
}

.matrix_to_part <- function(m) {
    if (methods::is(m, "sparseMatrix")) {
        m <- methods::as(methods::as(methods::as(m, "CsparseMatrix"), "generalMatrix"), "dMatrix")
        # genes x cells CSC = cells x genes CSR, the layout Python reads
        return(list(kind = "sparse", data = m@x, indices = m@i, indptr = m@p))
    }
    list(kind = "dense", values = as.numeric(as.matrix(m)))
}

# metadata() content that Python can hold; other entries are named in env$dropped.
.plain_r <- function(v, where, env) {
    if (is.null(v)) {
        return(NULL)
    }
    if (is.factor(v)) {
        v <- as.character(v)
    }
    if (is.data.frame(v)) {
        v <- lapply(as.list(v), function(col) if (is.factor(col)) as.character(col) else col)
    }
    if (is.list(v) && !is.object(v)) {
        nm <- names(v)
        named <- !is.null(nm) && all(nzchar(nm))
        out <- lapply(seq_along(v), function(i) {
            .plain_r(v[[i]], paste0(where, "$", if (named) nm[i] else i), env)
        })
        keep <- !vapply(out, is.null, logical(1))
        out <- out[keep]
        if (named) {
            names(out) <- nm[keep]
            return(out)
        }
        return(unname(out))
    }
    if (is.atomic(v) && !is.object(v) && (is.numeric(v) || !anyNA(v)) && length(dim(v)) <= 2L) {
        if (length(v) == 1L && is.null(dim(v))) {
            return(v)
        }
        return(.wire(v))
    }
    env$dropped <- c(env$dropped, where)
    NULL
}

.spe_to_parts <- function(x, X.name) {
    an <- SummarizedExperiment::assayNames(x)
    order <- c(X.name, setdiff(an, X.name))
    assays <- lapply(order, function(a) {
        .matrix_to_part(SummarizedExperiment::assay(x, a, withDimnames = FALSE))
    })
    cn <- colnames(x)
    if (is.null(cn)) cn <- as.character(seq_len(ncol(x)))
    rn <- rownames(x)
    if (is.null(rn)) rn <- as.character(seq_len(nrow(x)))
    obs <- .frame_to_part(SummarizedExperiment::colData(x), "colData")
    var <- .frame_to_part(SummarizedExperiment::rowData(x), "rowData")
    env <- new.env()
    env$dropped <- c(obs$dropped, var$dropped)
    spatial <- NULL
    spatial_names <- character(0)
    if (methods::is(x, "SpatialExperiment")) {
        sc <- SpatialExperiment::spatialCoords(x)
        if (ncol(sc) > 0) {
            spatial <- list(values = as.numeric(t(sc)), ncol = ncol(sc))
            spatial_names <- if (is.null(colnames(sc))) character(0) else colnames(sc)
        }
        if (!is.null(SpatialExperiment::imgData(x)) && nrow(SpatialExperiment::imgData(x)) > 0) {
            env$dropped <- c(env$dropped, "imgData")
        }
    }
    rdn <- SingleCellExperiment::reducedDimNames(x)
    reduced <- lapply(rdn, function(n) {
        m <- as.matrix(SingleCellExperiment::reducedDim(x, n, withDimnames = FALSE))
        list(values = as.numeric(t(m)), ncol = ncol(m))
    })
    if (length(SingleCellExperiment::altExpNames(x))) {
        env$dropped <- c(env$dropped, "altExps")
    }
    uns <- .plain_r(S4Vectors::metadata(x), "metadata", env)
    parts <- list(n_obs = ncol(x), n_vars = nrow(x), obs_names = cn, var_names = rn,
                  X_name = X.name, assay_names = order, assays = assays, obs = obs$part,
                  var = var$part, spatial = spatial, spatial_names = spatial_names,
                  reduced_names = rdn, reduced = reduced)
    parts <- .wire(parts)
    parts$uns <- if (length(uns)) uns else NULL
    list(parts = parts, dropped = env$dropped)
}
