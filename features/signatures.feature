Feature: Electronic signatures
  Signatures show who signed, when and why, are bound to exactly what was
  signed, and need the people and roles the process demands
  (21 CFR 11.50, 11.70, 11.200; EU GMP Annex 11 §14).

  Background:
    Given a fresh GxP installation

  @req:11.50 @req:annex11.14
  Scenario: The manifestation shows printed name, meaning and time with zone
    When "qa2" signs the record "SOP-123" as "Approved"
    Then the action succeeds
    And the signature shows "Petra Approver (qa2) — Approved — 2026-03-02"
    And the signature shows "UTC"

  @req:11.70
  Scenario: A signature is bound to the content and the record it signed
    When "qa2" signs the record "SOP-124" as "Approved"
    Then the signature does not verify for altered content
    And the signature does not verify when copied to another record

  @req:11.200a @req:11.10g
  Scenario: Signing needs the right password and a role granting the meaning
    When "qa2" signs the record "SOP-125" as "Approved" with a wrong password
    Then the action is refused with "user id or password is wrong"
    And no signature of "SOP-125" exists
    When "op1" signs the record "SOP-125" as "Released"
    Then the action is refused with "may not sign as"
    When "admin" signs the record "SOP-125" as "Approved"
    Then the action is refused with "may not sign as"
    And the audit trail records "signature.refused" for document "SOP-125"

  @req:11.200a2 @req:211.188b11
  Scenario: The performer cannot verify their own step
    Given batch "B-1" is in execution
    And phase "HEAT" of batch "B-1" was performed by "op1"
    When "op1" signs phase "HEAT" of batch "B-1" as Verified
    Then the action is refused with "separation of duties"
    When "op2" signs phase "HEAT" of batch "B-1" as Verified
    Then the action succeeds

  @req:11.200a1
  Scenario: A signature with a wrong password is refused and leaves no signature
    Given batch "B-1" is in execution
    And phase "HEAT" of batch "B-1" is running
    When "op1" signs phase "HEAT" of batch "B-1" as Performed with password "Wrong-Password-9!"
    Then the action is refused with "user id or password is wrong"
    When "op2" signs phase "HEAT" of batch "B-1" as Verified
    Then the action is refused with "no Performed signature"

  @req:11.200a1 @req:11.200a2
  Scenario: Signing inside a session needs the password again
    When "qa2" signs the record "SOP-126" as "Approved" in the session with a wrong password
    Then the action is refused with "user id or password is wrong"
    And no signature of "SOP-126" exists
    When "qa2" signs the record "SOP-126" as "Approved" in the session
    Then the action succeeds
    And the record "SOP-126" carries 1 signature(s)
    And the signature shows "Petra Approver (qa2) — Approved"
    And the signature shows "Europe/Berlin"
