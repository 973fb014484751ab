"""Apache Spark as a second engine (issue 17, docs/scale-out.md).

Needs the `spark` extra (`make install-spark`): pyspark is imported only inside the functions that
use it, so importing this package never requires it.
"""
