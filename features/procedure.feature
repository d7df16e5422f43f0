Feature: Enforced procedure, weigh & dispense and OT capture identity
  The master recipe declares the order of phases and each phase's mandatory
  data; the engine refuses anything else, says what is missing and records
  the refusal. Material is dispensed only as the bill of materials says, on a
  calibrated balance, from a released, unexpired lot that holds enough. Process
  values come only from an authorised device account.

  Background:
    Given a fresh GxP installation

  @req:11.10f
  Scenario: A phase cannot start before its predecessor completes
    Given batch "B-1" of the strict master recipe is created and started
    And the granulation unit procedure of batch "B-1" is running
    When "op1" starts phase "MIX" of batch "B-1"
    Then the action is refused with "before its predecessor(s) complete: GRAN/UP-GRAN/OP-WET/PH-HEAT (Idle)"
    And the refusal is in the audit trail of phase "MIX" of batch "B-1"
    Given phase "HEAT" of batch "B-1" is performed and verified
    When "op1" starts phase "MIX" of batch "B-1"
    Then the action succeeds

  @req:11.10f
  Scenario: A phase cannot start while its operation is not running
    Given batch "B-1" of the strict master recipe is created and started
    When "op1" starts phase "HEAT" of batch "B-1"
    Then the action is refused with "its parent GRAN/UP-GRAN/OP-WET is Idle, not Running"
    And the refusal is in the audit trail of phase "HEAT" of batch "B-1"
    And phase "HEAT" of batch "B-1" is Idle
    Given the granulation unit procedure of batch "B-1" is running
    When "op1" starts phase "HEAT" of batch "B-1"
    Then the action succeeds

  @req:211.188b11
  Scenario: A phase does not complete without its mandatory data
    Given batch "B-1" of the strict master recipe is created and started
    And the granulation unit procedure of batch "B-1" is running
    When "op1" starts phase "HEAT" of batch "B-1"
    And "op1" completes phase "HEAT" of batch "B-1"
    Then the action is refused with "a value of parameter temperature; the IPC result moisture; the dispensing of API-PARA; the dispensing of LACTOSE"
    And the refusal is in the audit trail of phase "HEAT" of batch "B-1"
    When phase "HEAT" of batch "B-1" gets all its data
    And "op1" completes phase "HEAT" of batch "B-1"
    Then the action succeeds

  @req:211.188b11
  Scenario: A manual entry needs a second person when the recipe asks
    Given batch "B-1" of the strict master recipe is created and started
    And the granulation unit procedure of batch "B-1" is running
    When "op1" starts phase "HEAT" of batch "B-1"
    And phase "HEAT" of batch "B-1" gets all its data
    And "op1" enters temperature = 70.4 Cel by hand in batch "B-1"
    And "op1" completes phase "HEAT" of batch "B-1"
    Then the action is refused with "signed Performed and Verified (a second person)"
    When "op1" signs the manual entry in batch "B-1"
    And "op1" verifies the manual entry in batch "B-1"
    Then the action is refused with "a second person verifies it"
    When "op2" verifies the manual entry in batch "B-1"
    And "op1" completes phase "HEAT" of batch "B-1"
    Then the action succeeds

  @req:211.188b11
  Scenario: Review is refused while a phase lacks its Verified signature
    Given batch "B-1" is in execution
    And phase "HEAT" of batch "B-1" is performed and verified
    And phase "BLEND" of batch "B-1" is performed and verified
    When "op1" starts phase "MIX" of batch "B-1"
    And phase "MIX" of batch "B-1" gets all its data
    And "op1" completes phase "MIX" of batch "B-1"
    And "op1" completes batch "B-1" with 98 kg
    And QA completes the review of batch "B-1"
    Then the action is refused with "GRAN/UP-GRAN/OP-WET/PH-MIX: a Verified signature"
    When "op2" verifies phase "MIX" of batch "B-1"
    And QA completes the review of batch "B-1"
    Then the action succeeds

  @req:211.101
  Scenario: Only materials of the bill of materials are dispensed, within tolerance
    Given batch "B-1" is in execution
    And a released lot "SUC-1" of 5 kg SUCROSE expiring in 300 days
    When "op1" dispenses 50 kg of SUCROSE from lot "SUC-1" on balance "BAL-01" for batch "B-1"
    Then the action is refused with "SUCROSE is not in the bill of materials of phase GRAN/UP-GRAN/OP-WET/PH-HEAT"
    When "op1" dispenses 20.5 kg of API-PARA from lot "API-L1" on balance "BAL-01" for batch "B-1"
    Then the action is refused with "outside 20.000 ± 0.100 kg"
    And lot "API-L1" holds 500 kg
    When "op1" dispenses 20.04 kg of API-PARA from lot "API-L1" on balance "BAL-01" for batch "B-1"
    Then the action succeeds
    And lot "API-L1" holds 479.96 kg
    And the consumption is in the audit trail of lot "API-L1"

  @req:211.101
  Scenario: Dispensing needs a registered balance in calibration
    Given batch "B-1" is in execution
    When "op1" dispenses 20 kg of API-PARA from lot "API-L1" on balance "NO-SUCH-BALANCE" for batch "B-1"
    Then the action is refused with "no registered balance 'NO-SUCH-BALANCE'"
    When "op1" dispenses 20 kg of API-PARA from lot "API-L1" on balance "GRAN-01" for batch "B-1"
    Then the action is refused with "GRAN-01 is a Granulator, not a balance"
    Given the calibration of balance "BAL-01" is overdue
    When "op1" dispenses 20 kg of API-PARA from lot "API-L1" on balance "BAL-01" for batch "B-1"
    Then the action is refused with "balance BAL-01 is out of calibration"

  @req:211.101
  Scenario: A lot is never overdrawn, and expired lots are not dispensed
    Given batch "B-1" is in execution
    And a released lot "API-SHORT" of 5 kg API-PARA expiring in 300 days
    And a released lot "API-OLD" of 100 kg API-PARA expiring in 0 days
    When "op1" dispenses 20 kg of API-PARA from lot "API-SHORT" on balance "BAL-01" for batch "B-1"
    Then the action is refused with "lot API-SHORT holds 5 kg; 20 cannot be dispensed"
    And lot "API-SHORT" holds 5 kg
    When "op1" dispenses 20 kg of API-PARA from lot "API-OLD" on balance "BAL-01" for batch "B-1"
    Then the action is refused with "lot API-OLD expired"
    When "op1" dispenses 20 kg of API-PARA from lot "API-L1" on balance "BAL-01" for batch "B-1"
    Then the action succeeds

  @req:211.101
  Scenario: Dispensed containers are charged into the unit of their phase
    Given batch "B-1" is in execution
    When "op1" dispenses 20 kg of API-PARA from lot "API-L1" on balance "BAL-01" for batch "B-1"
    And "op1" dispenses 78 kg of LACTOSE from lot "LAC-L7" on balance "BAL-01" for batch "B-1"
    And "op1" charges the dispensed containers into the unit of batch "B-1"
    Then the action is refused with "runs; it is Idle"
    When "op1" starts phase "HEAT" of batch "B-1"
    And "op1" charges the dispensed containers into the unit of batch "B-1"
    Then the action succeeds
    And every container of batch "B-1" is recorded as charged into "GRAN-01"

  @req:11.10h
  Scenario: Values are captured only under an authorised device account
    Given batch "B-1" is in execution
    And phase "HEAT" of batch "B-1" is running
    When the account "op1" captures temperature = 70.1 Cel for batch "B-1" as client line-1
    Then the action is refused with "lacks permission 'capture.device'"
    When the account "svc-ot" captures temperature = 70.1 Cel for batch "B-1" as client line-1
    Then the action succeeds
    And the value's audit entry names account "svc-ot" and client "line-1"

  @req:11.10h
  Scenario: Unknown parameters and timestamps ahead of the server clock are refused
    Given batch "B-1" is in execution
    And phase "HEAT" of batch "B-1" is running
    When the OT connector captures parameter not_in_recipe = 999 for batch "B-1"
    Then the action is refused with "the recipe has no parameter"
    When the OT connector captures temperature = 70.2 Cel stamped 2400000000 s ahead for batch "B-1"
    Then the action is refused with "ahead of the server clock"
    When the OT connector captures temperature = 70.2 Cel stamped 30 s ahead for batch "B-1"
    Then the action succeeds
