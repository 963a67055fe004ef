library(testthat)
library(FuseMap)

test_check("FuseMap")
