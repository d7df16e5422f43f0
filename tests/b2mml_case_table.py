"""What a reader must do with each real third-party case in ../shared/b2mml-cases."""

from __future__ import annotations

# file → (expected outcome, detail): "read" (schema-valid, with a domain model), "bound"
# (schema-valid, read into its generated binding only: no domain model), "invalid" (first error
# line and element), "legacy"/"unsupported" (clear refusal), "semantic" (XSD-valid, wrong meaning).
EXPECTED: dict[str, tuple[str, object]] = {
    "cocop-biz-spec/Neg_ProcessProductionSchedule_EndBeforeStart.xml": (
        "semantic",
        "before it starts",
    ),
    "cocop-biz-spec/Neg_ProcessProductionSchedule_InvalidCreationTime.xml": (
        "invalid",
        (36, "CreationDateTime"),
    ),
    "cocop-biz-spec/Neg_ProcessProductionSchedule_InvalidDate.xml": (
        "invalid",
        (47, "EarliestStartTime"),
    ),
    "cocop-biz-spec/Neg_ProcessProductionSchedule_InvalidEqElemLevel.xml": (
        "invalid",
        (47, "EquipmentElementLevel"),
    ),
    "cocop-biz-spec/Neg_ProcessProductionSchedule_InvalidMatUse.xml": (
        "invalid",
        (56, "MaterialUse"),
    ),
    "cocop-biz-spec/Neg_ProcessProductionSchedule_InvalidQuantityDataType.xml": (
        "invalid",
        (51, "DataType"),
    ),
    "cocop-biz-spec/Neg_ProcessProductionSchedule_InvalidQuantityValue.xml": (
        "semantic",
        "not a double number",
    ),
    "cocop-biz-spec/ProcessProductionSchedule.xml": ("read", "ProductionSchedule"),
    "cocop-biz-spec/ProcessProductionSchedule_DateTimeKinds.xml": (
        "read-zone",
        "ProductionSchedule",
    ),
    "cocop-biz-spec/ProcessProductionSchedule_EmptyItems.xml": ("read", "ProductionSchedule"),
    "cocop-biz-spec/ProcessProductionSchedule_EmptySched.xml": ("read", "ProductionSchedule"),
    "cocop-biz-spec/ProcessProductionSchedule_SchedulingParams.xml": (
        "invalid",
        (45, "SchedulingParameters"),
    ),
    "mesa-b2mml-batchml-examples/INV-20121210175555-0001L0001_01.xml": ("legacy", "V0401"),
    "mesa-b2mml-batchml-examples/LOT-20121210170718-0001L0001.xml": ("legacy", "V0401"),
    "mesa-b2mml-batchml-examples/MAT-20121210170256-CRBN0001.xml": ("legacy", "V0401"),
    "mesa-b2mml-batchml-examples/PES-20121229115825-53107.xml": ("legacy", "V0401"),
    "mesa-b2mml-batchml-examples/PRO-20121210181416-27942.xml": ("legacy", "V0401"),
    "mesa-b2mml-batchml-examples/ProductionBatchRecord_Example_v06.xml": ("legacy", "V0401"),
    "mesa-b2mml-batchml-examples/cough_syrup_pmw.xml": ("legacy", "BatchML V02"),
    "rwth-iat-recipeeditor/2024-11-03_MasterRecipeHC.xml": (
        "invalid",
        (341, "EquipmentElementType"),
    ),
    "rwth-iat-recipeeditor/Wabe102030_Grundrezept.xml": ("read", "MasterRecipe"),
    "rwth-iat-recipeeditor/Wabe10_Grundrezept.xml": ("read", "MasterRecipe"),
    "rwth-iat-recipeeditor/Wabe20_Grundrezept.xml": ("invalid", (519, "?")),
    "rwth-iat-recipeeditor/expectedXml.xml": ("read", "GRecipe"),
    "rwth-iat-recipetool/GeneralRecipeHC.xml": ("read", "GRecipeInformation"),
    "rwth-iat-recipetool/IAT-HC-Beispielrezept.xml": ("read", "GRecipe"),
    "rwth-iat-recipetool/expectedXml.xml": ("read", "GRecipe"),
    "rwth-iat-recipol/2026-04-26_BatchML_MasterRecipe1_Sol_1.xml": ("read", "MasterRecipe"),
    "rwth-iat-recipol/2026-04-26_BatchML_MasterRecipe2_Sol_1.xml": ("read", "MasterRecipe"),
    "rwth-iat-recipol/Testrezept_kur.xml": ("read", "MasterRecipe"),
}
