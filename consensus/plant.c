/* The planted bug of a bypax-sim-plant run (plant.h). Compiled only into
 * the test copy of the consensus library, never into the shipped one: a
 * build that references px_plant without PX_TEST_PLANTS fails to link. */
#include "plant.h"

#ifndef PX_TEST_PLANTS
#error "plant.c belongs to the test copy of consensus/ only (PX_TEST_PLANTS)"
#endif

enum px_plant px_plant = PX_PLANT_NONE;
